#!/usr/bin/env bash
# Run every benchmark once, in one go, and print the summary table.
#   bench/run_all.sh
# Results: bench/results/*.json (ignored by git), logs under bench/results/logs.
# Takes about 15 minutes on 2 cores; each script bounds its own time.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

bench/setup_anchors.sh || exit 1
rm -f bench/results/*.json
status=0
for script in engine_overhead service_overhead parallel_delegation concurrency relay load_500; do
  echo
  echo "== bench/$script.py"
  timeout 1500 "$PY" "bench/$script.py" || { echo "bench/$script.py failed"; status=1; }
done
echo
"$PY" bench/summary.py
exit $status
