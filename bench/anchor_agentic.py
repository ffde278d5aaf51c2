"""One supervisor run of powabase-agentic 0.6.1, timed; prints one JSON object.

Runs in its own environment (bench/.anchors/agentic, Python 3.13), started by
bench/engine_overhead.py:

    bench/.anchors/agentic/bin/python bench/anchor_agentic.py --api-base URL --runs 30

The run: a coordinator with two agent entities; the scripted server makes it
delegate to both in its first turn and answer with text in its second.
powabase-agentic runs the two delegations one after another.

Network: `agentic.agent.model_registry` fetches a model list from an outside
host (5 s timeout) the first time it resolves a context window. This script
replaces that fetch function with one that returns an empty registry at once,
and installs loopback_guard first, which refuses any connection that is not
to 127.0.0.1, so nothing leaves the machine even if another path tries.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loopback_guard  # noqa: E402

loopback_guard.install()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    # Its Agent takes no api_base; litellm reads the endpoint from here.
    os.environ["OPENAI_API_BASE"] = args.api_base
    os.environ["OPENAI_API_KEY"] = "not-needed"
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ["HF_HUB_OFFLINE"] = "1"

    started = time.perf_counter()
    import agentic
    from agentic import Agent, ExecutionContext, Orchestration
    from agentic.agent import model_registry
    import_seconds = time.perf_counter() - started

    model_registry._fetch_openrouter_registry = lambda: {}

    model = "openai/coord"
    events: list[str] = []

    def on_event(event: dict) -> None:
        events.append(event.get("type") or event.get("event") or "")

    def one_run() -> str:
        orch = Orchestration(name="bench", description="Benchmark team", strategy="supervisor",
                             orchestrator_config={"model": model},
                             settings={"model": model, "max_steps": 5})
        for name, role in (("Researcher", "Finds facts"), ("Writer", "Writes prose")):
            orch.add_entity("agent", agent=Agent(model=f"openai/{name.lower()}",
                                                 system_prompt=f"You are the {name}.", name=name),
                            role_description=role)
        output = orch.run("Tell me about owls", context=ExecutionContext(on_event=on_event))
        return output.content

    for _ in range(args.warmup):
        one_run()

    cpu_ms, wall_ms = [], []
    events.clear()
    content = ""
    for _ in range(args.runs):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        content = one_run()
        cpu_ms.append((time.process_time() - cpu0) * 1000)
        wall_ms.append((time.perf_counter() - wall0) * 1000)

    print(json.dumps({
        "engine": "powabase-agentic",
        "version": _version("powabase-agentic"),
        "litellm": _version("litellm"),
        "python": sys.version.split()[0],
        "runs": args.runs,
        "cpu_ms_median": statistics.median(cpu_ms),
        "wall_ms_median": statistics.median(wall_ms),
        "cpu_ms": cpu_ms,
        "wall_ms": wall_ms,
        "import_seconds": import_seconds,
        "events_per_run": len(events) / args.runs,
        "last_answer": content[:80],
        "refused_hosts": sorted(set(loopback_guard.refused)),
        "agentic_module": agentic.__name__,
    }))


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
