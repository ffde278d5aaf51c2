"""Engine overhead: CPU and wall time of one supervisor run at zero model latency.

    python bench/engine_overhead.py [--runs 30] [--warmup 5]

One run: the coordinator delegates to two entities in its first turn (the two
entity calls run at once) and answers with text in its second, so 4 streamed
model calls. The model is the scripted server on 127.0.0.1 with zero latency,
so what is left is what the engine and its model client cost.

Measured in one invocation against one scripted server:
- ours: engine.team.run_team called in this process with hooks that do nothing,
  once with each model transport (litellm, then direct: POWABASE_MODEL_TRANSPORT,
  which the engine reads at call time);
- powabase-agentic 0.6.1 and langgraph-supervisor 0.0.31 through their public
  APIs, each in its own environment under bench/.anchors (bench/setup_anchors.sh);
- the floor: the same 4 streamed calls made with a pooled httpx client and a
  minimal SSE parser, the least any engine could spend.

Reports the median over the runs after warm-up of time.process_time() (CPU,
every thread of the process) and time.perf_counter() (wall) per run.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

common.use_project_python()
common.setup_paths()

ANCHORS = {
    "powabase-agentic": ("agentic", "anchor_agentic.py"),
    "langgraph-supervisor": ("langgraph", "anchor_langgraph.py"),
}
MESSAGE = "Tell me about owls"


def team_spec(api_base: str):
    from engine.specs import AgentSpec, EntitySpec, TeamSpec, assign_tool_names

    entities = [
        EntitySpec(entity_id=None, role=role,
                   agent=AgentSpec(id=None, name=name, model=f"openai/{name.lower()}",
                                   system_prompt=f"You are the {name}.",
                                   settings={"api_base": api_base}))
        for name, role in (("Researcher", "Finds facts"), ("Writer", "Writes prose"))
    ]
    assign_tool_names(entities)
    return TeamSpec(id=None, name="Bench team", strategy="supervisor", entities=entities,
                    default_model="openai/coord",
                    orchestrator_config={"model": "openai/coord", "api_base": api_base})


async def measure_ours(api_base: str, runs: int, warmup: int, transport: str | None = None) -> dict:
    """Measure our engine in this process with `transport` (None: the one already chosen)."""
    transport = transport or common.transport()
    os.environ[common.TRANSPORT_VAR] = transport
    started = time.perf_counter()
    from engine.hooks import RunHooks
    from engine.team import run_team
    import_seconds = time.perf_counter() - started

    class CountingHooks(RunHooks):
        def __init__(self):
            self.events = {}

        async def emit(self, event, fields):
            self.events[event] = self.events.get(event, 0) + 1

    for _ in range(warmup):
        await run_team(team_spec(api_base), MESSAGE, CountingHooks())
    cpu, wall = [], []
    hooks = outcome = None
    for _ in range(runs):
        hooks = CountingHooks()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        outcome = await run_team(team_spec(api_base), MESSAGE, hooks)
        cpu.append((time.process_time() - cpu0) * 1000)
        wall.append((time.perf_counter() - wall0) * 1000)
    from engine.openai_compat import close_session

    await close_session()
    if hooks.events.get("delegation_completed") != 2 or outcome.status != "completed":
        raise RuntimeError(f"our run did not delegate twice and complete: {hooks.events}")
    return {"engine": f"ours, {transport} transport (engine.team.run_team)", "runs": runs,
            "transport": transport,
            "cpu_ms_median": common.median(cpu), "wall_ms_median": common.median(wall),
            "cpu_ms": cpu, "wall_ms": wall, "import_seconds": import_seconds,
            "events_per_run": sum(hooks.events.values()),
            **common.package_versions("litellm", "openai", "httpx", "aiohttp")}


async def measure_floor(api_base: str, runs: int, warmup: int) -> dict:
    """The same 4 streamed calls with a pooled httpx client: the least any engine can cost."""
    import httpx

    tools = [{"type": "function", "function": {
        "name": f"delegate_to_{name}", "description": f"Delegate to {name}",
        "parameters": {"type": "object", "properties": {"task": {"type": "string"}},
                       "required": ["task"]}}} for name in ("researcher", "writer")]

    async def call(client, model, messages, with_tools):
        body = {"model": model, "messages": messages, "stream": True,
                "stream_options": {"include_usage": True}}
        if with_tools:
            body["tools"] = tools
        text, calls = [], {}
        async with client.stream("POST", f"{api_base}/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                for choice in json.loads(line[6:]).get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        text.append(delta["content"])
                    for part in delta.get("tool_calls") or []:
                        entry = calls.setdefault(part["index"], {"id": "", "name": "", "arguments": ""})
                        function = part.get("function") or {}
                        entry["id"] = part.get("id") or entry["id"]
                        entry["name"] = function.get("name") or entry["name"]
                        entry["arguments"] += function.get("arguments") or ""
        return "".join(text), list(calls.values())

    async def one_run(client):
        messages = [{"role": "system", "content": "You coordinate a team."},
                    {"role": "user", "content": MESSAGE}]
        _text, calls = await call(client, "coord", messages, True)
        answers = await asyncio.gather(*(
            call(client, c["name"].removeprefix("delegate_to_"),
                 [{"role": "user", "content": json.loads(c["arguments"])["task"]}], False)
            for c in calls))
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": c["id"], "type": "function",
             "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]})
        messages += [{"role": "tool", "tool_call_id": c["id"], "content": text}
                     for c, (text, _) in zip(calls, answers, strict=True)]
        text, _ = await call(client, "coord", messages, True)
        return text

    cpu, wall = [], []
    async with httpx.AsyncClient() as client:
        for _ in range(warmup):
            await one_run(client)
        for _ in range(runs):
            wall0, cpu0 = time.perf_counter(), time.process_time()
            await one_run(client)
            cpu.append((time.process_time() - cpu0) * 1000)
            wall.append((time.perf_counter() - wall0) * 1000)
    return {"engine": "floor (pooled httpx, 4 calls)", "runs": runs,
            "cpu_ms_median": common.median(cpu), "wall_ms_median": common.median(wall),
            "cpu_ms": cpu, "wall_ms": wall}


def measure_anchor(name: str, api_base: str, runs: int, warmup: int) -> dict:
    venv, script = ANCHORS[name]
    python = common.BENCH / ".anchors" / venv / "bin" / "python"
    if not python.exists():
        return {"engine": name, "error": f"{python} is missing: run bench/setup_anchors.sh"}
    done = subprocess.run([str(python), str(common.BENCH / script), "--api-base", api_base,
                           "--runs", str(runs), "--warmup", str(warmup)],
                          capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
                               **common.OFFLINE_ENV})
    if done.returncode != 0:
        return {"engine": name, "error": done.stderr[-2000:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result.get("refused_hosts"):
        print(f"{name} tried to reach {result['refused_hosts']}; refused", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--skip-anchors", action="store_true")
    common.add_transport_option(parser)
    args = parser.parse_args()
    common.apply_transport(args)

    with common.ScriptedServer(latency=0.0) as llm:
        ours_rows = [asyncio.run(measure_ours(llm.base_url, args.runs, args.warmup, transport))
                     for transport in common.TRANSPORTS]
        os.environ[common.TRANSPORT_VAR] = args.transport
        rows = [*ours_rows, asyncio.run(measure_floor(llm.base_url, args.runs, args.warmup))]
        if not args.skip_anchors:
            for name in ANCHORS:
                rows.append(measure_anchor(name, llm.base_url, args.runs, args.warmup))

    # The ratio column and the summary's headline use the transport chosen with --transport.
    ours = next(row for row in ours_rows if row["transport"] == args.transport)
    anchors = [row for row in rows[len(ours_rows) + 1:] if "cpu_ms_median" in row]
    faster = min(anchors, key=lambda row: row["cpu_ms_median"]) if anchors else None
    table = []
    for row in rows:
        if "error" in row:
            table.append((row["engine"], "-", "-", "-", row["error"].splitlines()[-1][:60]))
            continue
        table.append((row["engine"], f"{row['cpu_ms_median']:.1f}", f"{row['wall_ms_median']:.1f}",
                      f"{ours['cpu_ms_median'] / row['cpu_ms_median']:.2f}", row.get("version", "")))
    print(f"Engine overhead: one supervisor run, 2 delegations, 4 streamed calls, zero model "
          f"latency; medians of {args.runs} runs after {args.warmup} warm-up runs")
    common.print_table(table, ("engine", "CPU ms/run", "wall ms/run", "ours / this (CPU)",
                               "version"))
    summary = {}
    if faster is not None:
        ratio = ours["cpu_ms_median"] / faster["cpu_ms_median"]
        summary = {"faster_anchor": faster["engine"], "transport": args.transport,
                   "cpu_ratio_to_faster_anchor": ratio, "target_ratio": 0.5, "met": ratio <= 0.5,
                   "cpu_ratio_by_transport": {
                       row["transport"]: row["cpu_ms_median"] / faster["cpu_ms_median"]
                       for row in ours_rows}}
        for row in ours_rows:
            each = row["cpu_ms_median"] / faster["cpu_ms_median"]
            print(f"\nours ({row['transport']}) / faster anchor ({faster['engine']}) CPU: "
                  f"{each:.2f} (target <= 0.50: {'met' if each <= 0.5 else 'missed'})")
    path = common.write_result("engine_overhead", {"runs": args.runs, "warmup": args.warmup,
                                                   "rows": rows, "summary": summary})
    print(f"results: {path.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
