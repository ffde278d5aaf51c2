"""One supervisor run of langgraph-supervisor 0.0.31, timed; prints one JSON object.

Runs in its own environment (bench/.anchors/langgraph), started by
bench/engine_overhead.py:

    bench/.anchors/langgraph/bin/python bench/anchor_langgraph.py --api-base URL --runs 30

The run: a supervisor with two workers; the scripted server makes it call both
handoff tools in its first turn and answer with text in its second, streamed
with stream_mode ["messages", "values"] as a service streaming tokens would.

create_supervisor builds its supervisor with create_react_agent's default
version "v2", which runs only the first of two parallel handoffs. This script
builds it with version "v1", under which both workers run in parallel, so the
anchor does the same work as our engine: 4 model calls, 2 of them at once.
loopback_guard refuses any connection that is not to 127.0.0.1.
"""

import argparse
import functools
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
    os.environ["LANGSMITH_TRACING"] = "false"
    os.environ["LANGCHAIN_TRACING_V2"] = "false"

    started = time.perf_counter()
    import langgraph_supervisor.supervisor as supervisor_module
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent
    from langgraph_supervisor import create_handoff_tool, create_supervisor
    import_seconds = time.perf_counter() - started

    supervisor_module.create_react_agent = functools.partial(create_react_agent, version="v1")

    def llm(model: str) -> ChatOpenAI:
        return ChatOpenAI(base_url=args.api_base, api_key="not-needed", model=model,
                          streaming=True, max_retries=0)

    names = {"researcher": "Finds facts", "writer": "Writes prose"}
    workers = [create_react_agent(model=llm(name), tools=[], name=name,
                                  prompt=f"You are the {name}.")
               for name in names]
    handoffs = [create_handoff_tool(agent_name=name, name=f"delegate_to_{name}", description=role)
                for name, role in names.items()]
    compile_started = time.perf_counter()
    app = create_supervisor(workers, model=llm("coord"), tools=handoffs,
                            parallel_tool_calls=True,
                            prompt="You coordinate a team.").compile()
    compile_seconds = time.perf_counter() - compile_started

    counts = {"tokens": 0, "worker_answers": 0}
    worker_prefixes = tuple(f"[{name}]" for name in names)

    def one_run() -> str:
        final = None
        for _namespace, mode, payload in app.stream(
                {"messages": [{"role": "user", "content": "Tell me about owls"}]},
                stream_mode=["messages", "values"], subgraphs=True):
            if mode == "messages":
                counts["tokens"] += 1
            else:
                final = payload
        messages = final["messages"]
        # Worker answers, as the scripted server writes them: "[researcher] Answer to: ...".
        counts["worker_answers"] += sum(1 for m in messages if m.type == "ai"
                                        and str(m.content).startswith(worker_prefixes))
        return messages[-1].content

    for _ in range(args.warmup):
        one_run()

    cpu_ms, wall_ms = [], []
    counts.update(tokens=0, worker_answers=0)
    content = ""
    for _ in range(args.runs):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        content = one_run()
        cpu_ms.append((time.process_time() - cpu0) * 1000)
        wall_ms.append((time.perf_counter() - wall0) * 1000)

    print(json.dumps({
        "engine": "langgraph-supervisor",
        "version": _version("langgraph-supervisor"),
        "langgraph": _version("langgraph"),
        "langchain_openai": _version("langchain-openai"),
        "python": sys.version.split()[0],
        "runs": args.runs,
        "cpu_ms_median": statistics.median(cpu_ms),
        "wall_ms_median": statistics.median(wall_ms),
        "cpu_ms": cpu_ms,
        "wall_ms": wall_ms,
        "import_seconds": import_seconds,
        "compile_seconds": compile_seconds,
        "stream_items_per_run": counts["tokens"] / args.runs,
        "worker_answers_per_run": counts["worker_answers"] / args.runs,
        "last_answer": str(content)[:80],
        "refused_hosts": sorted(set(loopback_guard.refused)),
    }))


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
