"""The load test: 500 runs streaming at once across 2 web processes and 2 workers.

    python bench/load_500.py [--runs 500] [--latency 0.2]

Starts its own stack on 127.0.0.1 (a PostgreSQL server of its own, a Redis
queue and event channel of its own, 2 uvicorn processes, 2 Celery workers with
the threads pool) and a scripted model server answering after 200 ms. The
client opens every run/stream request at once, half on each web process, and
reads each stream to its end.

It passes when every stream is complete: HTTP 200, ids 1..n with no
duplicate and no gap, the last frame is `complete` with status `completed`,
no `error` event, and no error line in the services' logs. It also reports the
web memory per open stream ((peak - idle RSS of both web processes) / runs)
and the worker memory per run.

Bounded: every stream has a deadline, the whole test a hard limit (SIGALRM),
and every process it starts is stopped by its pid. Exit status 0 on pass.
"""

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

common.use_project_python()
common.setup_paths()

HARD_LIMIT_SECONDS = 900
SEQUENTIAL_CALLS = 3


def _hard_limit(signum, frame):
    raise TimeoutError(f"the load test exceeded its hard limit of {HARD_LIMIT_SECONDS} s")


async def load(stack, webs, workers, team_id: str, runs: int, latency: float) -> dict:
    pids = {**{web.name: web.process.pid for web in webs},
            **{worker.name: worker.process.pid for worker in workers}}
    idle = {name: common.rss_kib(pid) for name, pid in pids.items()}
    urls = [f"{web.url}/api/orchestrations/{team_id}/run/stream" for web in webs]
    with common.PeakRss(pids) as peak, stack.connection_counter() as connections:
        async with common.client_session() as session:
            started = time.perf_counter()
            results = await asyncio.gather(*(
                common.stream_run(session, urls[index % len(urls)], stack.headers(index),
                                  f"Question {index}", timeout=300)
                for index in range(runs)))
            elapsed = time.perf_counter() - started
    failed = [(index, r.problems()) for index, r in enumerate(results) if r.problems()]
    web_growth = sum(peak.peak[web.name] - idle[web.name] for web in webs)
    worker_growth = sum(peak.peak[worker.name] - idle[worker.name] for worker in workers)
    durations = [r.completed_at - r.posted_at for r in results if r.completed_at]
    frames = [len(r.frames) for r in results]
    return {
        "runs": runs, "latency_s": latency, "elapsed_s": round(elapsed, 2),
        "ideal_s": SEQUENTIAL_CALLS * latency,
        "complete_streams": runs - len(failed), "failed": failed[:10],
        "frames_total": sum(frames), "frames_min": min(frames), "frames_max": max(frames),
        "run_duration_p50_s": round(common.percentile(durations, 50), 3),
        "run_duration_p95_s": round(common.percentile(durations, 95), 3),
        "phase_medians_s": common.phase_medians(results),
        "idle_rss_kib": idle, "peak_rss_kib": peak.peak,
        "web_kib_per_open_stream": round(web_growth / runs, 1),
        "worker_kib_per_run": round(worker_growth / runs, 1),
        "peak_db_connections": connections.peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    common.add_transport_option(parser)
    args = parser.parse_args()
    common.apply_transport(args)
    signal.signal(signal.SIGALRM, _hard_limit)
    signal.alarm(HARD_LIMIT_SECONDS)

    with common.ScriptedServer(latency=args.latency) as llm, common.Stack("load") as stack:
        webs = stack.start_webs(2)
        # Each worker can take more than half, so neither is the limit when
        # Celery hands the tasks out unevenly.
        workers = stack.start_workers(2, concurrency=args.runs // 2 + 50)
        team_id = stack.create_team(webs[0].url, llm.base_url)
        warm = asyncio.run(load(stack, webs, workers, team_id, 4, args.latency))
        if warm["failed"]:
            raise RuntimeError(f"warm-up failed: {warm['failed']}")
        time.sleep(1)
        row = asyncio.run(load(stack, webs, workers, team_id, args.runs, args.latency))
        errors = stack.error_lines()
    signal.alarm(0)

    passed = not row["failed"] and not errors
    print(f"Load: {args.runs} runs streaming at once over 2 web processes and 2 workers, "
          f"model latency {args.latency} s")
    common.print_table([
        ("complete streams", f"{row['complete_streams']}/{args.runs}"),
        ("frames received", f"{row['frames_total']} ({row['frames_min']}-{row['frames_max']} a stream)"),
        ("wall time, first POST to last complete", f"{row['elapsed_s']} s (ideal {row['ideal_s']:.1f} s)"),
        ("run duration p50 / p95", f"{row['run_duration_p50_s']} / {row['run_duration_p95_s']} s"),
        ("web memory per open stream", f"{row['web_kib_per_open_stream']} KiB (target <= 64)"),
        ("worker memory per run", f"{row['worker_kib_per_run']} KiB (target <= 1024)"),
        ("database connections at peak", row["peak_db_connections"]),
        ("error lines in the service logs", len(errors)),
    ], ("figure", "value"))
    for index, problems in row["failed"]:
        print(f"stream {index}: {'; '.join(problems)}")
    for line in errors[:10]:
        print(line)
    print("PASS" if passed else "FAIL")
    row.update(passed=passed, service_error_lines=len(errors))
    path = common.write_result("load_500", {"summary": row, "error_lines": errors[:50]})
    print(f"results: {path.relative_to(common.ROOT)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
