#!/usr/bin/env bash
# Create the benchmark environments under bench/.anchors (ignored by git):
#   agentic    powabase-agentic 0.6.1 on Python 3.13, with litellm 1.103.2
#              (it fails to import with later litellm releases)
#   langgraph  langgraph-supervisor 0.0.31 with langchain-openai
#   profile    pyinstrument and py-spy, seeing the project's packages through a
#              .pth file, for profiling the benchmarks without touching the
#              project's dependencies
# None of these is a project dependency. Run again to refresh; it is idempotent.
set -euo pipefail
cd "$(dirname "$0")"

PY313="${PY313:-$HOME/.pyenv/versions/3.13.0/bin/python3.13}"
PY311="${PY311:-$HOME/.pyenv/versions/3.11.7/bin/python3.11}"
UV="${UV:-uv}"
for py in "$PY313" "$PY311"; do
  [ -x "$py" ] || { echo "missing interpreter $py (set PY313 / PY311)" >&2; exit 1; }
done

make_env() {
  local name="$1" python="$2"; shift 2
  [ -x ".anchors/$name/bin/python" ] || "$UV" venv -q --python "$python" ".anchors/$name"
  "$UV" pip install -q --python ".anchors/$name/bin/python" "$@"
}

make_env agentic "$PY313" "powabase-agentic==0.6.1" "litellm==1.103.2"
make_env langgraph "$PY311" "langgraph-supervisor==0.0.31" "langgraph==1.2.24" \
  "langchain-core==1.8.3" "langchain-openai==1.8.1"
make_env profile "$PY311" "pyinstrument==5.1.3" "py-spy==0.4.3"
site=$(.anchors/profile/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
project_site=$(../.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$project_site" > "$site/zz_project.pth"
echo "anchor environments ready under bench/.anchors"
