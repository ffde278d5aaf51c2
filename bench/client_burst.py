"""Client burst: the scripted model server under N clients at once, with no engine.

    python bench/client_burst.py [--runs 200] [--latency 2] [--client httpx|aiohttp]
                                 [--shards 1]

N tasks each make 3 streamed calls one after another through ONE pooled
client (httpx.AsyncClient with 1000 connections, or an aiohttp session
without a connection limit, close to what engine/openai_compat.py builds). With
--shards K the httpx calls take K clients in turn, each with 1000 / K
connections. Reports the
throughput fraction 3 L / makespan, the client's CPU time and the time to the
first byte of each call. Shows whether the model server or the HTTP client
bounds bench/engine_burst.py and bench/concurrency.py.
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

BODY = {"model": "coord", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def burst(base: str, runs: int, client_name: str,
                shards: int = 1) -> tuple[float, float, list[float]]:
    first_bytes: list[float] = []

    if client_name == "httpx":
        import itertools

        import httpx

        size = max(1, 1000 // shards)
        clients = [httpx.AsyncClient(timeout=120, limits=httpx.Limits(
            max_connections=size, max_keepalive_connections=size)) for _ in range(shards)]
        turn = itertools.cycle(clients)

        async def call():
            started = time.perf_counter()
            async with next(turn).stream("POST", f"{base}/chat/completions", json=BODY) as response:
                async for _line in response.aiter_lines():
                    if started:
                        first_bytes.append(time.perf_counter() - started)
                        started = 0.0
    else:
        import aiohttp

        client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trust_env=False)

        async def call():
            started = time.perf_counter()
            async with client.post(f"{base}/chat/completions", json=BODY) as response:
                async for _line in response.content:
                    if started:
                        first_bytes.append(time.perf_counter() - started)
                        started = 0.0

    async def one():
        for _ in range(3):
            await call()

    try:
        await call()  # warm-up
        first_bytes.clear()
        cpu0, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(runs)))
        return time.perf_counter() - started, time.process_time() - cpu0, first_bytes
    finally:
        if client_name == "httpx":
            for each in clients:
                await each.aclose()
        else:
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--client", choices=("httpx", "aiohttp"), default="httpx")
    parser.add_argument("--shards", type=int, default=1, help="httpx clients taken in turn")
    args = parser.parse_args()

    with common.ScriptedServer(latency=args.latency) as llm:
        makespan, cpu, first_bytes = asyncio.run(burst(llm.base_url, args.runs, args.client,
                                                     args.shards))
    ideal = 3 * args.latency
    row = {"client": args.client, "shards": args.shards, "runs": args.runs, "latency_s": args.latency,
           "makespan_s": round(makespan, 3), "throughput_fraction": round(ideal / makespan, 4),
           "cpu_ms_per_call": round(cpu / (3 * args.runs) * 1000, 2),
           "first_byte_p50_s": round(common.percentile(first_bytes, 50), 3),
           "first_byte_max_s": round(max(first_bytes), 3)}
    print(f"{args.client} ({args.shards} client(s)), {args.runs} x 3 calls, L={args.latency} s: "
          f"{row['throughput_fraction']:.0%} of ideal ({makespan:.2f} s for {ideal:.1f} s), "
          f"{row['cpu_ms_per_call']} ms CPU per call, first byte p50 {row['first_byte_p50_s']} s "
          f"max {row['first_byte_max_s']} s")
    path = common.write_result(f"client_burst_{args.client}_{args.shards}", {"summary": row})
    print(f"results: {path.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
