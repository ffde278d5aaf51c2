"""Relay: event latency from the worker to the client, and web memory, at 200 open streams.

    python bench/relay.py [--streams 200]

One uvicorn process serves every stream; one Celery worker (threads pool)
runs the runs. The scripted model answers after 1 s and streams its chunks
50 ms apart, so events keep flowing while all streams are open. The client
opens the streams 10 ms apart and reads them to `complete`.

- latency of an event: the client's receive time minus the event's `ts`
  field, which the worker sets when it creates the event (same machine, same
  clock). It covers storing the event (one INSERT per batch), publishing it on
  Redis, the web process's subscription, the stream loop and the socket.
  Content deltas wait up to 10 ms for company before their batch is written,
  so they are reported apart from the other events, which are written at once.
  `start` is written by the web process before the stream opens and is left out.
- web memory per open stream: (peak RSS of the uvicorn process while the
  streams are open - its RSS after warm-up) / streams.
Targets: p50 <= 5 ms and p99 <= 50 ms; <= 64 KiB web memory per open stream.
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

common.use_project_python()
common.setup_paths()

LATENCY = 1.0
CHUNK_INTERVAL = 0.05
STAGGER = 0.01


async def open_streams(url: str, headers, count: int, open_count: list[int]):
    async with common.client_session() as session:

        async def one(index: int):
            await asyncio.sleep(index * STAGGER)
            open_count[0] += 1
            try:
                return await common.stream_run(session, url, headers(index), f"Question {index}",
                                               timeout=240)
            finally:
                open_count[0] -= 1

        return await asyncio.gather(*(one(index) for index in range(count)))


async def measure(web, worker, url: str, headers, count: int) -> dict:
    open_count = [0]
    web_idle = common.rss_kib(web.process.pid)
    worker_idle = common.rss_kib(worker.process.pid)
    most_open = 0

    async def watch_open():
        nonlocal most_open
        while True:
            most_open = max(most_open, open_count[0])
            await asyncio.sleep(0.05)

    watcher = asyncio.get_running_loop().create_task(watch_open())
    started = time.perf_counter()
    with common.PeakRss({"web": web.process.pid, "worker": worker.process.pid}) as peak:
        results = await open_streams(url, headers, count, open_count)
    watcher.cancel()
    elapsed = time.perf_counter() - started

    deltas, others = [], []
    for result in results:
        for _seq, event, data, received in result.frames:
            if event == "start":
                continue
            latency = received - common.event_ts(data)
            (deltas if event == "content_delta" else others).append(latency)
    failed = [(index, r.problems()) for index, r in enumerate(results) if r.problems()]
    every = deltas + others
    return {
        "streams": count, "most_open_at_once": most_open, "elapsed_s": round(elapsed, 2),
        "complete_streams": count - len(failed), "failed": failed[:5],
        "events": len(every), "deltas": len(deltas), "other_events": len(others),
        "all_p50_ms": common.ms(common.percentile(every, 50)),
        "all_p99_ms": common.ms(common.percentile(every, 99)),
        "other_p50_ms": common.ms(common.percentile(others, 50)),
        "other_p99_ms": common.ms(common.percentile(others, 99)),
        "delta_p50_ms": common.ms(common.percentile(deltas, 50)),
        "delta_p99_ms": common.ms(common.percentile(deltas, 99)),
        "web_idle_rss_kib": web_idle, "web_peak_rss_kib": peak.peak["web"],
        "web_kib_per_stream": round((peak.peak["web"] - web_idle) / count, 1),
        "worker_idle_rss_kib": worker_idle, "worker_peak_rss_kib": peak.peak["worker"],
        "worker_kib_per_run": round((peak.peak["worker"] - worker_idle) / count, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    common.add_transport_option(parser)
    args = parser.parse_args()
    common.apply_transport(args)

    with common.ScriptedServer(latency=LATENCY, chunk_interval=CHUNK_INTERVAL) as llm, \
            common.Stack("relay") as stack:
        (web,) = stack.start_webs(1)
        (worker,) = stack.start_workers(1, concurrency=args.streams + 20)
        team_id = stack.create_team(web.url, llm.base_url)
        url = f"{web.url}/api/orchestrations/{team_id}/run/stream"
        warm = asyncio.run(open_streams(url, stack.headers, 5, [0]))
        if any(r.problems() for r in warm):
            raise RuntimeError(f"warm-up failed: {warm[0].problems()}")
        time.sleep(1)
        row = asyncio.run(measure(web, worker, url, stack.headers, args.streams))
        errors = stack.error_lines()

    print(f"Relay: {args.streams} streams on one web process ({row['most_open_at_once']} open at "
          f"once), model latency {LATENCY} s, chunks {CHUNK_INTERVAL * 1000:.0f} ms apart; "
          f"{row['complete_streams']}/{args.streams} streams complete")
    common.print_table([
        ("events other than deltas", row["other_events"], row["other_p50_ms"], row["other_p99_ms"]),
        ("content deltas (batched <= 10 ms)", row["deltas"], row["delta_p50_ms"], row["delta_p99_ms"]),
        ("all events", row["events"], row["all_p50_ms"], row["all_p99_ms"]),
    ], ("worker to client", "events", "p50 ms", "p99 ms"))
    print(f"\nweb memory per open stream: {row['web_kib_per_stream']} KiB (target <= 64); "
          f"worker memory per run: {row['worker_kib_per_run']} KiB")
    print(f"targets (all events): p50 <= 5 ms {'met' if row['all_p50_ms'] <= 5 else 'missed'}, "
          f"p99 <= 50 ms {'met' if row['all_p99_ms'] <= 50 else 'missed'}")
    if errors:
        print(f"{len(errors)} error lines in the service logs, first: {errors[0]}")
    row["service_error_lines"] = len(errors)
    path = common.write_result("relay", {"summary": row, "error_lines": errors[:20]})
    print(f"results: {path.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
