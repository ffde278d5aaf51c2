"""Print the figures of the last benchmark run as one Markdown table.

    python bench/summary.py [--transport litellm|direct]

Reads bench/results/<transport>/*.json, which bench/run_all.sh writes afresh in
one go.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

common.use_project_python()


def load(name: str) -> dict | None:
    path = common.results_dir() / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok) -> str:
    return "" if ok is None else ("met" if ok else "missed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_transport_option(parser)
    os.environ[common.TRANSPORT_VAR] = parser.parse_args().transport
    rows = []
    engine = load("engine_overhead")
    if engine:
        by_name = {row["engine"]: row for row in engine["rows"]}
        for name, row in by_name.items():
            if "cpu_ms_median" not in row:
                rows.append((f"engine CPU per run: {name}", "error", "", ""))
                continue
            rows.append((f"engine CPU / wall per run: {name}",
                         f"{row['cpu_ms_median']:.1f} / {row['wall_ms_median']:.1f} ms", "", ""))
        summary = engine.get("summary") or {}
        floor = by_name["floor (pooled httpx, 4 calls)"]["cpu_ms_median"]
        for name, row in by_name.items():
            if not name.startswith("ours") or "cpu_ms_median" not in row:
                continue
            label = row.get("transport", "litellm")
            if summary:
                ratio = summary["cpu_ratio_by_transport"][label]
                rows.append((f"engine CPU, ours ({label}) / {summary['faster_anchor']}",
                             f"{ratio:.2f}x", "<= 0.5x", verdict(ratio <= 0.5)))
            rows.append((f"engine CPU, ours ({label}) / floor",
                         f"{row['cpu_ms_median'] / floor:.1f}x", "", ""))
    service = load("service_overhead")
    if service:
        s = service["summary"]
        rows += [
            ("run end to end, p50 / p95 (zero model latency)",
             f"{s['end_to_end_p50_ms']} / {s['end_to_end_p95_ms']} ms", "", ""),
            ("service overhead, p50 / p95", f"{s['overhead_p50_ms']} / {s['overhead_p95_ms']} ms",
             "p50 <= 25 ms", verdict(s["overhead_p50_ms"] <= 25)),
            ("time to first SSE byte, p50 / p95",
             f"{s['first_byte_p50_ms']} / {s['first_byte_p95_ms']} ms", "p50 <= 20 ms",
             verdict(s["first_byte_p50_ms"] <= 20)),
        ]
    parallel = load("parallel_delegation")
    if parallel:
        p = parallel["summary"]["through"]
        rows.append(("parallel delegation phase, 3 x 1 s, median / max",
                     f"{p['phase_median_s']:.3f} / {p['phase_max_s']:.3f} s", "<= 1.1 s",
                     verdict(p["phase_median_s"] <= 1.1)))
    concurrency = load("concurrency")
    if concurrency:
        for row in concurrency["rows"]:
            target = row["runs"] == 200 and row["latency_s"] == 2.0
            rows.append((f"one worker, N={row['runs']}, L={row['latency_s']:g} s, burst: share of "
                         f"ideal throughput; complete; worker CPU and KiB per run",
                         f"{row['throughput_fraction']:.0%}; {row['complete_streams']}/{row['runs']}; "
                         f"{row.get('worker_cpu_ms_per_run', '?')} ms; {row['worker_kib_per_run']:.0f} KiB",
                         ">= 90 %, <= 1024 KiB" if target else "<= 1024 KiB",
                         verdict(row["throughput_fraction"] >= 0.9 and
                                 row["complete_streams"] == row["runs"]) if target
                         else verdict(row["worker_kib_per_run"] <= 1024)))
            sustained = row.get("sustained")
            if sustained and sustained["throughput_fraction"] is None:
                rows.append((f"one worker, N={row['runs']}, L={row['latency_s']:g} s, held in "
                             f"flight", "not measured: runs outlasted the window", "", ""))
            elif sustained:
                rows.append((f"one worker, N={row['runs']}, L={row['latency_s']:g} s, held in "
                             f"flight: share of ideal throughput; complete",
                             f"{sustained['throughput_fraction']:.0%} ({sustained['throughput_runs_per_s']} "
                             f"of {sustained['ideal_runs_per_s']} runs/s); "
                             f"{sustained['complete_streams']}/{sustained['runs_total']}",
                             ">= 90 %" if target else "",
                             verdict(sustained["throughput_fraction"] >= 0.9 and
                                     sustained["complete_streams"] == sustained["runs_total"]) if target
                             else ""))
    relay = load("relay")
    if relay:
        r = relay["summary"]
        rows += [
            (f"relay latency at {r['streams']} streams, all events p50 / p99",
             f"{r['all_p50_ms']} / {r['all_p99_ms']} ms", "<= 5 / <= 50 ms",
             verdict(r["all_p50_ms"] <= 5 and r["all_p99_ms"] <= 50)),
            ("relay latency, events other than deltas p50 / p99",
             f"{r['other_p50_ms']} / {r['other_p99_ms']} ms", "", ""),
            ("relay: complete streams", f"{r['complete_streams']}/{r['streams']}", "all",
             verdict(r["complete_streams"] == r["streams"])),
            ("web memory per open stream (relay)", f"{r['web_kib_per_stream']} KiB", "<= 64 KiB",
             verdict(r["web_kib_per_stream"] <= 64)),
        ]
    load_500 = load("load_500")
    if load_500:
        s = load_500["summary"]
        rows += [
            ("load: 500 streams at once, 2 web + 2 workers, L=0.2 s: complete",
             f"{s['complete_streams']}/{s['runs']}, {s['service_error_lines']} error lines",
             "all, none", verdict(s["passed"])),
            ("load: wall time first POST to last complete", f"{s['elapsed_s']} s",
             f"(ideal {s['ideal_s']:.1f} s)", ""),
            ("load: web memory per open stream", f"{s['web_kib_per_open_stream']} KiB", "<= 64 KiB",
             verdict(s["web_kib_per_open_stream"] <= 64)),
            ("load: worker memory per run", f"{s['worker_kib_per_run']} KiB", "<= 1024 KiB",
             verdict(s["worker_kib_per_run"] <= 1024)),
        ]

    first = next((data for data in (engine, service, parallel, concurrency, relay, load_500)
                  if data), None)
    if first:
        m = first["machine"]
        commit = os.environ.get("BENCH_COMMIT") or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=common.ROOT, capture_output=True,
            text=True).stdout.strip()
        print(f"Transport: {common.transport()}. Machine: {m['cores']} cores, "
              f"{m['memory_gib']} GiB, {m['cpu']}; Python "
              f"{m['python']}; commit {commit or 'unknown'}; load average at the end of the "
              f"first benchmark {', '.join(f'{v:.1f}' for v in m['load_average'])}\n")
    print("| figure | measured | target | |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    main()
