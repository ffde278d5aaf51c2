"""What the benchmarks share: the project's Python, the scripted model server, a
throwaway service stack (PostgreSQL database, Redis queue, uvicorn, Celery),
an asyncio SSE client, statistics and result files.

Everything listens on 127.0.0.1 and is a child process of the benchmark,
stopped by its own pid when the benchmark ends.
"""

import asyncio
import json
import math
import os
import platform
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"

# By default each stack starts a PostgreSQL server of its own (see PrivatePostgres);
# set this to use an existing server instead, e.g. postgres://postgres@127.0.0.1:5432/postgres.
ADMIN_DATABASE_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "")
POSTGRES_BIN = Path(os.environ.get("BENCH_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
# Enough for 500 streams: a web process opens one connection per request in flight.
PRIVATE_MAX_CONNECTIONS = 1200
REDIS_HOST_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
# The tests use Redis database 9; the benchmarks keep to their own.
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "12"))

# Keep litellm's import from fetching its cost map from an outside host.
OFFLINE_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}


# The engine's model transport for OpenAI-compatible models: litellm (the default)
# or direct (engine/openai_compat.py). The engine reads the variable at call
# time, and the stack's processes inherit it from os.environ.
TRANSPORT_VAR = "POWABASE_MODEL_TRANSPORT"
TRANSPORTS = ("litellm", "direct")


def transport() -> str:
    return os.environ.get(TRANSPORT_VAR) or "litellm"


def add_transport_option(parser) -> None:
    parser.add_argument("--transport", choices=TRANSPORTS, default=transport(),
                        help=f"model transport of the engine, in this process and in the web and "
                             f"worker processes it starts (default: ${TRANSPORT_VAR} or litellm)")


def apply_transport(args) -> None:
    """Export the chosen transport, so this process and every process it starts use it."""
    os.environ[TRANSPORT_VAR] = args.transport
    print(f"model transport: {args.transport}", flush=True)


def results_dir() -> Path:
    """bench/results/<transport>: the two transports' runs keep their own result files."""
    return RESULTS / transport()


def use_project_python() -> None:
    """Re-run this script with the project's virtualenv Python unless it already runs in it.

    So `python bench/load_500.py` works whichever `python` is first on PATH.
    """
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not VENV_PYTHON.exists():
        sys.exit(f"{VENV_PYTHON} is missing: run `make install` first.")
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])


def setup_paths() -> None:
    """Let a benchmark import the project (tests.stack, engine) and bench helpers."""
    for path in (str(ROOT), str(BENCH)):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ.update(OFFLINE_ENV)
    import loopback_guard

    loopback_guard.install()


# ---------------------------------------------------------------------------
# Statistics


def percentile(values, q: float) -> float:
    """Linear-interpolated percentile `q` (0..100) of `values`."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values) -> float:
    return percentile(values, 50)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def rss_kib(pid: int) -> int:
    """Resident set size of process `pid` in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time that process `pid` has used, in seconds (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakRss:
    """Samples the RSS of some processes every `interval` seconds and keeps each one's peak."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05):
        self.pids = pids
        self.interval = interval
        self.peak = {name: 0 for name in pids}
        self._task: asyncio.Task | None = None

    def sample(self) -> None:
        for name, pid in self.pids.items():
            try:
                self.peak[name] = max(self.peak[name], rss_kib(pid))
            except OSError:
                pass

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def __enter__(self):
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc_info):
        self._task.cancel()
        self.sample()


class PySpy:
    """`py-spy record` of some processes while the block runs, as collapsed stacks.

    py-spy comes from the profile environment that bench/setup_anchors.sh makes.
    """

    def __init__(self, pids: dict[str, int], name: str, rate: int = 250):
        self.pids = pids
        self.name = name
        self.rate = rate
        self.processes = []
        self.paths = {}

    def __enter__(self):
        py_spy = BENCH / ".anchors" / "profile" / "bin" / "py-spy"
        if not py_spy.exists():
            raise RuntimeError(f"{py_spy} is missing: run bench/setup_anchors.sh")
        RESULTS.mkdir(parents=True, exist_ok=True)
        for label, pid in self.pids.items():
            path = RESULTS / f"profile-{self.name}-{label}.txt"
            self.paths[label] = path
            self.processes.append(subprocess.Popen(
                [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate",
                 str(self.rate), "--output", str(path), "--nonblocking", "--threads"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1)
        return self

    def __exit__(self, *exc_info):
        import signal

        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def top_functions(path: Path, limit: int = 25, skip_idle: bool = True) -> list[tuple[str, float]]:
    """Share of samples in which each function appears, from a collapsed-stack file."""
    totals: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if skip_idle and any(idle in frames[-1] for idle in ("select (selectors", "wait (threading",
                                                             "_worker (concurrent", "poll (")):
            continue
        samples += int(count)
        for frame in set(frames):
            totals[frame] = totals.get(frame, 0) + int(count)
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:limit]
    return [(frame, count / samples) for frame, count in ranked] if samples else []


# ---------------------------------------------------------------------------
# Machine and versions, for the result files


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1), "cpu": cpu,
            "python": platform.python_version(), "kernel": platform.release(),
            "load_average": os.getloadavg()}


def package_versions(*names: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def write_result(name: str, result: dict) -> Path:
    directory = results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "machine": machine(), "transport": transport(), **result}
    path = directory / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def print_table(rows: list[tuple], headers: tuple) -> None:
    cells = [tuple(str(c) for c in headers)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


# ---------------------------------------------------------------------------
# The scripted model server, as its own process


class ScriptedServer:
    """`python -m tests.scripted_llm` on a free port of 127.0.0.1, with fixed latency."""

    def __init__(self, latency: float, chunk_interval: float = 0.0, log_dir: Path | None = None):
        self.latency = latency
        self.chunk_interval = chunk_interval
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.base_url = ""

    def start(self) -> "ScriptedServer":
        log = open(self.log_dir / f"llm-{self.latency}.log", "ab") if self.log_dir else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [str(VENV_PYTHON), "-m", "tests.scripted_llm", "--port", "0",
             "--latency", str(self.latency), "--chunk-interval", str(self.chunk_interval)],
            cwd=ROOT, env={**os.environ, **OFFLINE_ENV}, stdout=subprocess.PIPE, stderr=log,
            text=True,
        )
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("listening on "):
                self.base_url = line.split("listening on ", 1)[1].strip()
                return self
            if self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"the scripted model server did not start: {line!r}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


# ---------------------------------------------------------------------------
# A throwaway service stack


class PrivatePostgres:
    """A PostgreSQL server of the benchmark's own, in a temporary directory on 127.0.0.1.

    Its own server keeps the benchmark's connections and load away from the
    shared server that other test runs use, and allows more connections than
    the shared server's 100. Settings other than the connection limit, the port
    and the socket directory are initdb's defaults (fsync and synchronous_commit
    on). Runs as the `postgres` system user; stopped by its pid.
    """

    def __init__(self, max_connections: int = PRIVATE_MAX_CONNECTIONS):
        import tempfile

        self.max_connections = max_connections
        self.dir = Path(tempfile.mkdtemp(prefix="powabase-bench-pg-"))
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def admin_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> "PrivatePostgres":
        import pwd
        import shutil

        user = pwd.getpwnam("postgres")
        shutil.chown(self.dir, user.pw_uid, user.pw_gid)
        data = self.dir / "data"
        done = subprocess.run([str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                               "-A", "trust", "--no-sync", "-E", "UTF8"],
                              user=user.pw_uid, group=user.pw_gid, capture_output=True, text=True,
                              timeout=120, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stderr[-2000:]}")
        log = open(self.dir / "postgres.log", "ab")
        self.process = subprocess.Popen(
            [str(POSTGRES_BIN / "postgres"), "-D", str(data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
             "-c", f"max_connections={self.max_connections}"],
            user=user.pw_uid, group=user.pw_gid, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.dir)
        import psycopg

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited:\n{(self.dir / 'postgres.log').read_text()[-2000:]}")
            try:
                psycopg.connect(self.admin_url, connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                time.sleep(0.2)
        raise RuntimeError("the private PostgreSQL server did not start")

    def stop(self) -> None:
        import shutil
        import signal

        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ConnectionCounter:
    """Counts the connections to one database every `interval` seconds, in a thread; keeps the peak."""

    def __init__(self, admin_url: str, db_name: str, interval: float = 0.1):
        import threading

        self.admin_url = admin_url
        self.db_name = db_name
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self._stop.is_set():
                (count,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                        (self.db_name,)).fetchone()
                self.peak = max(self.peak, count)
                self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(10)


# Run submissions are throttled per API key (120 a minute by default), as one
# client would be; the benchmarks stand for many clients of one owner, so each
# stream takes the next of these keys.
API_KEYS = 40
CREATE_KEYS = """
from accounts.services import apikey_create, user_get_or_create
owner = user_get_or_create(username="bench")
for index in range(%d):
    print(apikey_create(owner=owner, name=f"bench {index}")[1])
"""


class Stack:
    """A PostgreSQL database, Redis queue and event channel of its own, web and worker processes.

    Use as a context manager; on exit it stops every process it started (by
    pid), drops its database and deletes its Redis queue.
    """

    def __init__(self, name: str):
        from tests.stack import ROOT as stack_root  # noqa: F401  (checks the import path)

        tag = f"{name}_{os.getpid()}_{secrets.token_hex(3)}"
        self.db_name = f"powabase_bench_{tag}"
        self.queue = f"powabase-bench-{tag}"
        self.log_dir = RESULTS / "logs" / tag
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            **OFFLINE_ENV,
            "REDIS_URL": f"{REDIS_HOST_URL}/{REDIS_DB}",
            "SECRET_KEY": "bench-only-secret-key-" + secrets.token_hex(16),
            "POWABASE_CELERY_QUEUE": self.queue,
            "POWABASE_EVENT_CHANNEL_PREFIX": self.queue,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "powabase.settings",
            # Plain HTTP on 127.0.0.1, as in `make test`: no redirect to HTTPS.
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
        }
        self.processes = []
        self.api_keys: list[str] = []
        self._created_db = False
        self.postgres: PrivatePostgres | None = None
        self.admin_url = ADMIN_DATABASE_URL

    # -- database ------------------------------------------------------------

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def connection_counter(self) -> ConnectionCounter:
        return ConnectionCounter(self.admin_url, self.db_name)

    def __enter__(self) -> "Stack":
        try:
            if not self.admin_url:
                self.postgres = PrivatePostgres().start()
                self.admin_url = self.postgres.admin_url
            self.env["DATABASE_URL"] = f"{self.admin_url.rsplit('/', 1)[0]}/{self.db_name}"
            self._admin(f'CREATE DATABASE "{self.db_name}"')
            self._created_db = True
            self.manage("migrate", "--noinput")
            printed = self.manage("shell", "--no-imports", "-c", CREATE_KEYS % API_KEYS)
            self.api_keys = [word for word in printed.split() if word.startswith("pb_")]
            if len(self.api_keys) != API_KEYS:
                raise RuntimeError(f"expected {API_KEYS} API keys, got {len(self.api_keys)}")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self._created_db:
            self._admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            self._created_db = False
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        try:
            import redis

            client = redis.Redis.from_url(f"{REDIS_HOST_URL}/{REDIS_DB}")
            keys = list(client.scan_iter(match=f"*{self.queue}*"))
            if keys:
                client.delete(*keys)
        except Exception as exc:  # cleaning up is best effort
            print(f"could not delete the benchmark's Redis keys: {exc}", file=sys.stderr)

    def manage(self, *args: str) -> str:
        done = subprocess.run([str(VENV_PYTHON), "manage.py", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    # -- processes -----------------------------------------------------------

    def start_webs(self, count: int = 1):
        from tests.stack import WebProcess

        webs = [WebProcess(f"web{i + 1}", self.env, self.log_dir).start() for i in range(count)]
        self.processes.extend(webs)
        for web in webs:
            web.wait_ready()
        return webs

    def start_workers(self, count: int = 1, concurrency: int = 50):
        from tests.stack import WorkerProcess

        workers = [WorkerProcess(f"worker{len(self.processes) + i + 1}", self.env, self.log_dir,
                                 concurrency=concurrency).start() for i in range(count)]
        self.processes.extend(workers)
        for worker in workers:
            worker.wait_ready()
        return workers

    def stop(self, process) -> None:
        process.stop()
        if process in self.processes:
            self.processes.remove(process)

    def error_lines(self) -> list[str]:
        """Lines that report an error or a traceback in the processes' logs."""
        found = []
        for path in sorted(self.log_dir.glob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback"):
                    found.append(f"{path.name}: {line}")
        return found

    # -- API -----------------------------------------------------------------

    def headers(self, index: int = 0) -> dict:
        """Request headers with the `index`-th API key (modulo the number of keys)."""
        return {"Authorization": f"Bearer {self.api_keys[index % len(self.api_keys)]}"}

    def create_team(self, web_url: str, api_base: str, members=("Researcher", "Writer"),
                    name: str = "Bench team") -> str:
        """Create a supervisor team whose coordinator and members use `api_base`; return its id."""
        import httpx

        with httpx.Client(base_url=web_url, headers=self.headers(), timeout=30) as client:
            team = client.post("/api/orchestrations", json={
                "name": name, "strategy": "supervisor",
                "orchestrator_config": {"model": "openai/coord", "api_base": api_base},
            })
            team.raise_for_status()
            team_id = team.json()["id"]
            for member in members:
                agent = client.post("/api/agents", json={
                    "name": member, "model": f"openai/{member.lower()}",
                    "system_prompt": f"You are the {member}.", "settings": {"api_base": api_base},
                })
                agent.raise_for_status()
                added = client.post(f"/api/orchestrations/{team_id}/entities",
                                    json={"agent_id": agent.json()["id"], "role": f"{member} work"})
                added.raise_for_status()
        return team_id


# ---------------------------------------------------------------------------
# An asyncio SSE client


@dataclass
class StreamResult:
    """One run/stream request as the client saw it. Times are time.perf_counter() values."""

    status: int = 0
    posted_at: float = 0.0
    posted_wall: float = 0.0
    first_byte_at: float = 0.0
    completed_at: float = 0.0
    # (seq, event, data, time.time() when received)
    frames: list = field(default_factory=list)
    error: str = ""

    @property
    def complete(self) -> dict | None:
        if self.frames and self.frames[-1][1] == "complete":
            return json.loads(self.frames[-1][2])
        return None

    def problems(self) -> list[str]:
        """What is wrong with this stream: not 200, no `complete`, ids not 1..n, an error event."""
        found = []
        if self.error:
            found.append(self.error)
        if self.status != 200:
            found.append(f"HTTP {self.status}")
        seqs = [frame[0] for frame in self.frames]
        if seqs != list(range(1, len(seqs) + 1)):
            found.append(f"ids are not 1..{len(seqs)}: {seqs[:50]}")
        complete = self.complete
        if complete is None:
            last = self.frames[-1][1] if self.frames else "no frame"
            found.append(f"the stream ended after {last!r} ({len(self.frames)} frames) without complete")
        elif complete.get("status") != "completed":
            found.append(f"run status {complete.get('status')}: {complete.get('error')}")
        if any(frame[1] == "error" for frame in self.frames):
            found.append("an error event")
        return found


def _parse_frames(buffer: bytearray, received: float, frames: list) -> None:
    """Move every complete SSE frame out of `buffer` into `frames`; comments are skipped."""
    while True:
        end = buffer.find(b"\n\n")
        if end < 0:
            return
        raw = bytes(buffer[:end]).decode()
        del buffer[:end + 2]
        seq, event, data = None, "message", []
        for line in raw.split("\n"):
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            if name == "id":
                seq = int(value)
            elif name == "event":
                event = value
            elif name == "data":
                data.append(value)
        if data:
            frames.append((seq, event, "\n".join(data), received))


async def stream_run(session, url: str, headers: dict, message: str,
                     timeout: float = 120.0) -> StreamResult:
    """POST `url` (a run/stream endpoint) and read its SSE frames until the stream ends."""
    result = StreamResult()
    buffer = bytearray()
    result.posted_wall = time.time()
    result.posted_at = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            async with session.post(url, json={"message": message}, headers=headers) as response:
                result.status = response.status
                if response.status != 200:
                    result.error = (await response.text())[:300]
                    return result
                while True:
                    chunk = await response.content.readany()
                    if not chunk:
                        break
                    now = time.perf_counter()
                    if not result.first_byte_at:
                        result.first_byte_at = now
                    buffer.extend(chunk)
                    _parse_frames(buffer, time.time(), result.frames)
                    if result.frames and result.frames[-1][1] == "complete":
                        break
        result.completed_at = time.perf_counter()
    except TimeoutError:
        result.error = f"no complete within {timeout} s"
    except Exception as exc:  # every client failure is counted, not raised
        result.error = f"{exc.__class__.__name__}: {exc}"
    return result


def client_session(limit: int = 0):
    """An aiohttp session without a connection limit and with no proxy from the environment."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=limit, force_close=False)
    return aiohttp.ClientSession(connector=connector, trust_env=False,
                                 timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))


def event_ts(data: str) -> float:
    """The `ts` field of an event's data (ISO 8601 UTC) as a Unix time."""
    from datetime import datetime

    value = json.loads(data)["ts"]
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def phases(result: StreamResult) -> dict:
    """Split one run by its events' `ts` fields (set where each event is created).

    request_to_start: the POST to the `start` event (written by the web process);
    start_to_engine: `start` to `orchestration_started` (commit, Celery dispatch
    and pick-up, claim); engine_to_complete: `orchestration_started` to
    `complete` (the run on the worker, with event storage); complete_to_client:
    `complete` created to `complete` received (storage, publish, relay, SSE).
    """
    ts, received = {}, {}
    for _seq, event, data, at in result.frames:
        if event in ("start", "orchestration_started", "complete") and event not in ts:
            ts[event] = event_ts(data)
            received[event] = at
    return {
        "request_to_start": ts["start"] - result.posted_wall,
        "start_to_engine": ts["orchestration_started"] - ts["start"],
        "engine_to_complete": ts["complete"] - ts["orchestration_started"],
        "complete_to_client": received["complete"] - ts["complete"],
    }


def phase_medians(results: list[StreamResult]) -> dict:
    split = [phases(r) for r in results if not r.problems()]
    if not split:
        return {}
    return {key: round(median([s[key] for s in split]), 4) for key in split[0]}
