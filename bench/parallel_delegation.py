"""Parallel delegation: three entities whose model takes 1 s each, delegated in one turn.

    python bench/parallel_delegation.py [--runs 5]

The coordinator calls all three `delegate_to_*` tools in its first turn; the
delegations run at once, so the delegation phase (from the first
`delegation_started` to the last `delegation_completed`, by the events' `ts`
fields, which the worker sets when it creates each event) should last one
model call: 1 s plus overhead. Target: at most 1.1 s.

Measured through the service (uvicorn, Celery worker, PostgreSQL, Redis, SSE)
and, for comparison, with engine.team.run_team in this process.
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

MEMBERS = ("Researcher", "Writer", "Critic")
LATENCY = 1.0
TARGET = 1.1


def delegation_phase(frames) -> float:
    started = [common.event_ts(data) for _seq, event, data, _at in frames
               if event == "delegation_started"]
    completed = [common.event_ts(data) for _seq, event, data, _at in frames
                 if event == "delegation_completed"]
    if len(started) != len(MEMBERS) or len(completed) != len(MEMBERS):
        raise RuntimeError(f"expected {len(MEMBERS)} delegations, got {len(started)} started "
                           f"and {len(completed)} completed")
    return max(completed) - min(started)


async def through_service(url: str, headers, runs: int) -> list[tuple[float, float]]:
    measured = []
    async with common.client_session() as session:
        for index in range(runs + 1):
            result = await common.stream_run(session, url, headers(index), "Review owls", timeout=60)
            if result.problems():
                raise RuntimeError(f"run {index} failed: {result.problems()}")
            if index:  # the first run warms the worker up
                measured.append((delegation_phase(result.frames),
                                 result.completed_at - result.posted_at))
    return measured


async def in_process(api_base: str, runs: int) -> list[tuple[float, float]]:
    from engine.hooks import RunHooks
    from engine.specs import AgentSpec, EntitySpec, TeamSpec, assign_tool_names
    from engine.team import run_team

    class Clock(RunHooks):
        def __init__(self):
            self.times = {"delegation_started": [], "delegation_completed": []}

        async def emit(self, event, fields):
            if event in self.times:
                self.times[event].append(time.time())

    def spec():
        entities = [EntitySpec(entity_id=None, role=f"{name} work",
                               agent=AgentSpec(id=None, name=name, model=f"openai/{name.lower()}",
                                               settings={"api_base": api_base}))
                    for name in MEMBERS]
        assign_tool_names(entities)
        return TeamSpec(id=None, name="Bench", strategy="supervisor", entities=entities,
                        default_model="openai/coord",
                        orchestrator_config={"model": "openai/coord", "api_base": api_base})

    measured = []
    for index in range(runs + 1):
        hooks = Clock()
        started = time.perf_counter()
        await run_team(spec(), "Review owls", hooks)
        if index:
            measured.append((max(hooks.times["delegation_completed"])
                             - min(hooks.times["delegation_started"]),
                             time.perf_counter() - started))
    from engine.openai_compat import close_session

    await close_session()
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    common.add_transport_option(parser)
    args = parser.parse_args()
    common.apply_transport(args)

    with common.ScriptedServer(latency=LATENCY) as llm, common.Stack("parallel") as stack:
        (web,) = stack.start_webs(1)
        stack.start_workers(1, concurrency=8)
        team_id = stack.create_team(web.url, llm.base_url, members=MEMBERS)
        url = f"{web.url}/api/orchestrations/{team_id}/run/stream"
        service = asyncio.run(through_service(url, stack.headers, args.runs))
        engine = asyncio.run(in_process(llm.base_url, args.runs))

    table = []
    summary = {}
    for name, measured in (("through the service", service), ("in-process engine", engine)):
        phase = [p for p, _ in measured]
        total = [t for _, t in measured]
        key = name.split()[0].replace("-", "_")
        summary[key] = {"phase_median_s": round(common.median(phase), 4),
                        "phase_max_s": round(max(phase), 4),
                        "run_median_s": round(common.median(total), 4)}
        table.append((name, f"{common.median(phase):.3f}", f"{max(phase):.3f}",
                      f"{common.median(total):.3f}", f"<= {TARGET}",
                      "met" if common.median(phase) <= TARGET else "missed"))
    print(f"Parallel delegation: {len(MEMBERS)} entities at {LATENCY} s model latency, "
          f"{args.runs} runs; a whole run is 3 sequential model calls (ideal {3 * LATENCY:.1f} s)")
    common.print_table(table, ("path", "phase median s", "phase max s", "run median s",
                               "target s", ""))
    path = common.write_result("parallel_delegation", {
        "runs": args.runs, "latency_s": LATENCY, "members": len(MEMBERS), "target_s": TARGET,
        "service_s": service, "engine_s": engine, "summary": summary})
    print(f"results: {path.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
