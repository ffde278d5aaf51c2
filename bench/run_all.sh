#!/usr/bin/env bash
# Run every benchmark once, in one go, and print the summary table.
#   bench/run_all.sh [litellm|direct]
# The model transport is the argument, else $POWABASE_MODEL_TRANSPORT, else
# litellm; every script passes it on to the web and worker processes it starts.
# Results: bench/results/<transport>/*.json (ignored by git), logs under
# bench/results/logs. Takes about 15 minutes on 2 cores; each script bounds its
# own time.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
TRANSPORT="${1:-${POWABASE_MODEL_TRANSPORT:-litellm}}"
export POWABASE_MODEL_TRANSPORT="$TRANSPORT"

bench/setup_anchors.sh || exit 1
mkdir -p "bench/results/$TRANSPORT"
rm -f "bench/results/$TRANSPORT"/*.json
status=0
for script in engine_overhead service_overhead parallel_delegation concurrency relay load_500; do
  echo
  echo "== bench/$script.py --transport $TRANSPORT  (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  timeout 1500 "$PY" "bench/$script.py" --transport "$TRANSPORT" || { echo "bench/$script.py failed"; status=1; }
done
echo
"$PY" bench/summary.py --transport "$TRANSPORT"
exit $status
