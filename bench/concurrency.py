"""Concurrency: N runs at once on ONE Celery worker process, against the model-bound ideal.

    python bench/concurrency.py [--sizes 50,200,500] [--latencies 2,0.5]

For each N a fresh worker process starts with `--pool threads --concurrency N`
(every run's task thread hands the run to the process's one run-host event
loop and waits). The client opens N run/stream requests at once, spread over
two web processes, and reads every stream to `complete`.

A run is 3 sequential model calls (the coordinator's first turn, the two
entity calls at once, the coordinator's answer), so with model latency L the
ideal is N runs every 3 L. Reported:
- throughput fraction: (N / makespan) / (N / 3 L) = 3 L / makespan, where the
  makespan runs from the first POST to the last `complete` frame;
- whether every stream is complete (ids 1..n, ends with `complete`, status
  completed, no `error` event);
- worker RSS per concurrent run: (peak RSS during the burst - RSS after
  warm-up, before the first burst of that worker) / N.
Target: at N = 200 and L = 2 s, at least 90 % of the ideal.
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

SEQUENTIAL_CALLS = 3


async def burst(urls: list[str], headers, count: int, timeout: float):
    """Start `count` streams at once, alternating over `urls`; return (results, makespan)."""
    async with common.client_session() as session:
        started = time.perf_counter()
        results = await asyncio.gather(*(
            common.stream_run(session, urls[index % len(urls)], headers(index), f"Question {index}",
                              timeout=timeout)
            for index in range(count)))
    finished = max((r.completed_at for r in results if r.completed_at), default=time.perf_counter())
    return results, finished - started


async def sustained(urls: list[str], headers, count: int, latency: float, window: float) -> dict:
    """Keep `count` runs in flight and measure the throughput in a steady window.

    Each of `count` clients starts a new run as soon as its previous one
    completes, so the worker carries `count` runs at all times, as a busy
    service would. The window opens after two model-bound run times, so the
    first burst of submissions and its runs are over, and it lasts `window`
    seconds. Clients keep submitting until it closes.

    With no pause between a client's runs, Little's law gives the throughput
    as count / R, where R is the mean time from POST to `complete` of the runs
    submitted in the window. Its fraction of the ideal count / (3 L) is 3 L / R.
    Counting completions in the window instead would be coarse: the clients
    stay in step, so runs complete in waves of about `count`.
    """
    cycle = SEQUENTIAL_CALLS * latency
    async with common.client_session() as session:
        started = time.perf_counter()
        opens, closes = started + 2 * cycle, started + 2 * cycle + window

        async def client(index: int) -> list:
            results, round_ = [], 0
            while time.perf_counter() < closes:
                results.append(await common.stream_run(
                    session, urls[(index + round_) % len(urls)], headers(index),
                    f"Question {index}.{round_}", timeout=max(60 + 20 * cycle, 0.4 * count)))
                round_ += 1
            return results

        per_client = await asyncio.gather(*(client(index) for index in range(count)))
    results = [result for runs in per_client for result in runs]
    measured = [r for r in results if r.completed_at and opens <= r.posted_at < closes]
    failed = [r.problems() for r in results if r.problems()]
    durations = [r.completed_at - r.posted_at for r in measured]
    # No run submitted in the window completed when runs take longer than the
    # window itself; the figure is then unknown, not zero.
    mean = sum(durations) / len(durations) if durations else None
    return {
        "window_s": window, "runs_measured": len(measured),
        "run_duration_mean_s": round(mean, 3) if mean else None,
        "run_duration_p50_s": round(common.percentile(durations, 50), 3) if durations else None,
        "run_duration_p95_s": round(common.percentile(durations, 95), 3) if durations else None,
        "throughput_runs_per_s": round(count / mean, 2) if mean else None,
        "ideal_runs_per_s": round(count / cycle, 2),
        "throughput_fraction": round(cycle / mean, 4) if mean else None,
        "completed_in_window": sum(1 for r in results
                                   if r.completed_at and opens <= r.completed_at < closes),
        "runs_total": len(results), "complete_streams": len(results) - len(failed),
        "failed": failed[:5],
    }


async def scenario(stack, worker, urls, count: int, latency: float, profile: bool,
                   idle: int) -> dict:
    """Run one burst; `idle` is the worker's RSS after warm-up, before its first burst."""
    import contextlib

    cpu_before = common.cpu_seconds(worker.process.pid)
    spy = (common.PySpy({"worker": worker.process.pid}, f"concurrency-{count}-{latency}")
           if profile else contextlib.nullcontext())
    with common.PeakRss({"worker": worker.process.pid}) as peak, \
            stack.connection_counter() as connections, spy:
        # The deadline grows with N: the runs share one worker's CPU.
        results, makespan = await burst(urls, stack.headers, count,
                                        timeout=max(60 + 20 * SEQUENTIAL_CALLS * latency,
                                                    0.4 * count))
    worker_cpu = common.cpu_seconds(worker.process.pid) - cpu_before
    durations = [r.completed_at - r.posted_at for r in results if r.completed_at]
    failed = [(index, r.problems()) for index, r in enumerate(results) if r.problems()]
    ideal = SEQUENTIAL_CALLS * latency
    return {
        "runs": count, "latency_s": latency, "makespan_s": round(makespan, 3),
        "ideal_makespan_s": ideal, "throughput_fraction": round(ideal / makespan, 4),
        "run_duration_p50_s": round(common.percentile(durations, 50), 3) if durations else None,
        "run_duration_p95_s": round(common.percentile(durations, 95), 3) if durations else None,
        "complete_streams": count - len(failed), "failed": failed[:5],
        "worker_idle_rss_kib": idle, "worker_peak_rss_kib": peak.peak["worker"],
        "worker_kib_per_run": round((peak.peak["worker"] - idle) / count, 1),
        "peak_db_connections": connections.peak,
        "worker_cpu_s": round(worker_cpu, 2),
        "worker_cpu_ms_per_run": round(worker_cpu / count * 1000, 1),
        "worker_cpu_utilisation": round(worker_cpu / makespan, 2),
        "phase_medians_s": common.phase_medians(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,200,500")
    parser.add_argument("--latencies", default="2,0.5")
    parser.add_argument("--profile", action="store_true",
                        help="record the worker with py-spy during each burst")
    parser.add_argument("--sustain", type=float, default=30.0, metavar="SECONDS",
                        help="after each burst, keep N runs in flight and measure the "
                             "throughput over a window of this many seconds (0: skip)")
    common.add_transport_option(parser)
    args = parser.parse_args()
    common.apply_transport(args)
    sizes = [int(value) for value in args.sizes.split(",")]
    latencies = [float(value) for value in args.latencies.split(",")]

    servers = [common.ScriptedServer(latency=latency) for latency in latencies]
    rows = []
    try:
        for server in servers:
            server.start()
        with common.Stack("concurrency") as stack:
            webs = stack.start_webs(2)
            teams = {server.latency: stack.create_team(webs[0].url, server.base_url,
                                                       name=f"Team {server.latency}")
                     for server in servers}
            for count in sizes:
                (worker,) = stack.start_workers(1, concurrency=count)
                warm = [f"{web.url}/api/orchestrations/{teams[latencies[-1]]}/run/stream"
                        for web in webs]
                warm_results, _ = asyncio.run(burst(warm, stack.headers, 4, timeout=60))
                if any(r.problems() for r in warm_results):
                    raise RuntimeError(f"warm-up failed: {warm_results[0].problems()}")
                time.sleep(1)
                idle = common.rss_kib(worker.process.pid)
                for latency in latencies:
                    urls = [f"{web.url}/api/orchestrations/{teams[latency]}/run/stream"
                            for web in webs]
                    row = asyncio.run(scenario(stack, worker, urls, count, latency, args.profile,
                                              idle))
                    if args.sustain > 0:
                        sustained_row = row["sustained"] = asyncio.run(
                            sustained(urls, stack.headers, count, latency, args.sustain))
                        share = (f"{sustained_row['throughput_fraction']:.0%} of ideal "
                                 f"({sustained_row['throughput_runs_per_s']} runs/s of "
                                 f"{sustained_row['ideal_runs_per_s']})"
                                 if sustained_row["throughput_fraction"] is not None
                                 else "not measured (runs outlasted the window)")
                        print(f"N={count} L={latency}s sustained: {share}, "
                              f"{sustained_row['complete_streams']}/"
                              f"{sustained_row['runs_total']} complete",
                              flush=True)
                    rows.append(row)
                    print(f"N={count} L={latency}s: {row['throughput_fraction']:.0%} of ideal, "
                          f"{row['complete_streams']}/{count} complete, "
                          f"{row['worker_kib_per_run']} KiB/run, "
                          f"{row['peak_db_connections']} database connections at peak, "
                          f"worker CPU {row['worker_cpu_ms_per_run']} ms/run "
                          f"({row['worker_cpu_utilisation']:.0%} of a core); "
                          f"phase medians {row['phase_medians_s']}", flush=True)
                stack.stop(worker)
            errors = stack.error_lines()
    finally:
        for server in servers:
            server.stop()

    def sustained_cell(row, key, form):
        value = row.get("sustained", {}).get(key)
        return "-" if value is None else format(value, form)

    table = [(row["runs"], row["latency_s"], f"{row['makespan_s']:.2f}",
              f"{row['ideal_makespan_s']:.1f}", f"{row['throughput_fraction']:.0%}",
              f"{row['run_duration_p50_s']}", f"{row['complete_streams']}/{row['runs']}",
              sustained_cell(row, "throughput_fraction", ".0%"),
              sustained_cell(row, "throughput_runs_per_s", ""),
              f"{row['worker_kib_per_run']:.0f}", row["peak_db_connections"]) for row in rows]
    print("\nConcurrency: N runs on one worker process (threads pool, concurrency N), "
          "2 web processes; burst = N submitted at once, first POST to last complete; "
          "held = N kept in flight, runs completed per second in a steady window")
    common.print_table(table, ("N", "latency s", "burst makespan s", "ideal s", "burst of ideal",
                               "run p50 s", "complete", "held of ideal", "held runs/s",
                               "worker KiB/run", "DB conns"))
    target = next((row for row in rows if row["runs"] == 200 and row["latency_s"] == 2.0), None)
    summary = {"service_error_lines": len(errors)}
    if target:
        summary.update(target_fraction=0.9, fraction_at_200_2s=target["throughput_fraction"],
                       met=target["throughput_fraction"] >= 0.9)
        print(f"\nN=200, L=2 s, burst: {target['throughput_fraction']:.0%} of the model-bound "
              f"ideal (target >= 90 %: {'met' if summary['met'] else 'missed'})")
        if target.get("sustained", {}).get("throughput_fraction") is not None:
            fraction = target["sustained"]["throughput_fraction"]
            summary.update(sustained_fraction_at_200_2s=fraction, sustained_met=fraction >= 0.9)
            print(f"N=200, L=2 s, held in flight: {fraction:.0%} of the model-bound ideal "
                  f"(target >= 90 %: {'met' if fraction >= 0.9 else 'missed'})")
    if errors:
        print(f"{len(errors)} error lines in the service logs, first: {errors[0]}")
    path = common.write_result("concurrency", {"rows": rows, "summary": summary,
                                               "error_lines": errors[:20]})
    print(f"results: {path.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
