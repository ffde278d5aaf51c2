"""Service overhead: what HTTP, Celery, Redis, PostgreSQL and SSE add to one run.

    python bench/service_overhead.py [--runs 50] [--warmup 5]

Starts a throwaway stack (its own PostgreSQL database, Redis queue and event
channel, one uvicorn process, one Celery worker with the threads pool) and a
scripted model server with zero latency. A client POSTs run/stream for the
same two-member supervisor team, one run at a time, and reads the stream to
`complete`.

- end to end: from sending the POST to receiving the `complete` frame;
- first byte: from sending the POST to the first byte of the SSE body (the
  `start` frame);
- service overhead: end to end minus the median wall time of the same run
  made in this process by engine.team.run_team against the same server (the
  model time plus the engine's own time), so what is left is the service:
  request handling, the database writes, Celery's queue, event storage and the
  relay to the stream.

The `ts` field that every event carries (set when the event is created) splits
each run into: request to `start` (web), `start` to `orchestration_started`
(commit, Celery dispatch and pick-up, claim), `orchestration_started` to
`complete` (the engine with event storage), `complete` to the client (relay).
"""

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

common.use_project_python()
common.setup_paths()

from engine_overhead import measure_ours  # noqa: E402


async def measure_service(web_url: str, headers, team_id: str, runs: int,
                          warmup: int) -> list[common.StreamResult]:
    url = f"{web_url}/api/orchestrations/{team_id}/run/stream"
    results = []
    async with common.client_session() as session:
        for index in range(warmup + runs):
            result = await common.stream_run(session, url, headers(index), "Tell me about owls",
                                             timeout=60)
            problems = result.problems()
            if problems:
                raise RuntimeError(f"run {index} failed: {problems}")
            if index >= warmup:
                results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile", action="store_true",
                        help="record the web and worker processes with py-spy during the runs")
    common.add_transport_option(parser)
    args = parser.parse_args()
    common.apply_transport(args)

    with common.ScriptedServer(latency=0.0) as llm, common.Stack("service") as stack:
        (web,) = stack.start_webs(1)
        (worker,) = stack.start_workers(1, concurrency=8)
        team_id = stack.create_team(web.url, llm.base_url)
        if args.profile:
            asyncio.run(measure_service(web.url, stack.headers, team_id, 0, args.warmup))
            with common.PySpy({"web": web.process.pid, "worker": worker.process.pid},
                              "service") as spy:
                results = asyncio.run(measure_service(web.url, stack.headers, team_id,
                                                      args.runs, 0))
            for label, path in spy.paths.items():
                print(f"py-spy {label}: {path.relative_to(common.ROOT)}")
        else:
            results = asyncio.run(measure_service(web.url, stack.headers, team_id, args.runs,
                                                  args.warmup))
        engine = asyncio.run(measure_ours(llm.base_url, 30, 5))
        errors = stack.error_lines()

    end_to_end = [r.completed_at - r.posted_at for r in results]
    first_byte = [r.first_byte_at - r.posted_at for r in results]
    engine_wall = engine["wall_ms_median"] / 1000
    overhead = [value - engine_wall for value in end_to_end]
    split = [common.phases(r) for r in results]

    def row(name, values, target=None):
        p50, p95 = common.percentile(values, 50), common.percentile(values, 95)
        verdict = "" if target is None else ("met" if p50 <= target else "missed")
        return (name, f"{p50 * 1000:.1f}", f"{p95 * 1000:.1f}",
                "" if target is None else f"<= {target * 1000:.0f}", verdict)

    table = [
        row("end to end (POST to complete)", end_to_end),
        row("in-process engine run (wall)", engine["wall_ms"] and [w / 1000 for w in engine["wall_ms"]]),
        row("service overhead", overhead, 0.025),
        row("first SSE byte", first_byte, 0.020),
        row("  request to start event", [s["request_to_start"] for s in split]),
        row("  start to orchestration_started", [s["start_to_engine"] for s in split]),
        row("  orchestration_started to complete", [s["engine_to_complete"] for s in split]),
        row("  complete event to client", [s["complete_to_client"] for s in split]),
    ]
    print(f"Service overhead: {args.runs} runs one at a time through uvicorn, Celery, Redis, "
          f"PostgreSQL and SSE; zero model latency")
    common.print_table(table, ("figure", "p50 ms", "p95 ms", "target ms", ""))
    if errors:
        print(f"\n{len(errors)} error lines in the service logs, first: {errors[0]}")
    result = {
        "runs": args.runs,
        "end_to_end_ms": [common.ms(v) for v in end_to_end],
        "first_byte_ms": [common.ms(v) for v in first_byte],
        "engine_wall_ms_median": engine["wall_ms_median"],
        "engine_cpu_ms_median": engine["cpu_ms_median"],
        "summary": {
            "end_to_end_p50_ms": common.ms(common.percentile(end_to_end, 50)),
            "end_to_end_p95_ms": common.ms(common.percentile(end_to_end, 95)),
            "overhead_p50_ms": common.ms(common.percentile(overhead, 50)),
            "overhead_p95_ms": common.ms(common.percentile(overhead, 95)),
            "first_byte_p50_ms": common.ms(common.percentile(first_byte, 50)),
            "first_byte_p95_ms": common.ms(common.percentile(first_byte, 95)),
            "phases_p50_ms": {key: common.ms(common.percentile([s[key] for s in split], 50))
                              for key in split[0]},
            "service_error_lines": len(errors),
        },
    }
    path = common.write_result("service_overhead", result)
    print(f"results: {path.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
