"""Starting the real service processes for tests: uvicorn web processes and a Celery worker."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """A child process of the test session, stopped by its own pid only."""

    def __init__(self, name: str, args: list[str], env: dict, log_dir: Path):
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "ServiceProcess":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT)
        return self

    def stop(self, timeout: float = 10) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class WebProcess(ServiceProcess):
    def __init__(self, name: str, env: dict, log_dir: Path):
        self.port = free_port()
        super().__init__(name, [str(VENV_BIN / "uvicorn"), "powabase.asgi:application",
                                "--host", "127.0.0.1", "--port", str(self.port),
                                "--log-level", "warning", "--no-access-log"], env, log_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become ready:\n{self.log_tail()}")


class WorkerProcess(ServiceProcess):
    def __init__(self, name: str, env: dict, log_dir: Path, concurrency: int = 50):
        super().__init__(name, [str(VENV_BIN / "celery"), "-A", "powabase", "worker",
                                "--pool", "threads", "--concurrency", str(concurrency),
                                "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                                "--hostname", f"{name}-{os.getpid()}@%h"], env, log_dir)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            if " ready." in self.log_tail(200):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become ready:\n{self.log_tail()}")
