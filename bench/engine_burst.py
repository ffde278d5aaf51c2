"""Engine burst: N runs at once in ONE event loop of this process, no service around it.

    python bench/engine_burst.py [--runs 200] [--latency 2] [--transport direct]

The same supervisor run as bench/concurrency.py (3 sequential model calls,
the middle one two calls at once) made by engine.team.run_team with hooks
that do nothing, N at once with asyncio.gather, against the scripted model
server with latency L. Also the floor: the same calls made with one pooled
httpx client. Comparing the throughput fraction (3 L / makespan) with
bench/concurrency.py separates what the engine and the model server cost
under load from what the service (web, Celery, database, Redis) adds.
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

from engine_overhead import MESSAGE, team_spec  # noqa: E402

SEQUENTIAL_CALLS = 3


async def burst_engine(api_base: str, runs: int) -> tuple[float, float, int]:
    from engine.hooks import RunHooks
    from engine.team import run_team

    class QuietHooks(RunHooks):
        async def emit(self, event, fields):
            return None

    await run_team(team_spec(api_base), MESSAGE, QuietHooks())  # warm-up
    cpu0, started = time.process_time(), time.perf_counter()
    outcomes = await asyncio.gather(*(run_team(team_spec(api_base), MESSAGE, QuietHooks())
                                      for _ in range(runs)))
    makespan = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    from engine.openai_compat import close_session

    await close_session()
    completed = sum(outcome.status == "completed" for outcome in outcomes)
    return makespan, cpu, completed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=2.0)
    common.add_transport_option(parser)
    args = parser.parse_args()
    common.apply_transport(args)

    with common.ScriptedServer(latency=args.latency) as llm:
        makespan, cpu, completed = asyncio.run(burst_engine(llm.base_url, args.runs))
    ideal = SEQUENTIAL_CALLS * args.latency
    row = {"runs": args.runs, "latency_s": args.latency, "makespan_s": round(makespan, 3),
           "ideal_makespan_s": ideal, "throughput_fraction": round(ideal / makespan, 4),
           "completed": completed, "cpu_ms_per_run": round(cpu / args.runs * 1000, 1)}
    print(f"engine alone, {args.runs} runs at once, L={args.latency} s, {args.transport}: "
          f"{row['throughput_fraction']:.0%} of ideal ({makespan:.2f} s for {ideal:.1f} s), "
          f"{completed}/{args.runs} completed, {row['cpu_ms_per_run']} ms CPU per run")
    path = common.write_result("engine_burst", {"summary": row})
    print(f"results: {path.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
