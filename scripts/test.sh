#!/usr/bin/env bash
# Set up, then run the whole test suite and the eval gate.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ ! -x /usr/bin/chromium ]; then
  echo "test: installing Debian's chromium for the browser tests"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi
fi
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 ORT_DISABLE_TELEMETRY=1
export OMP_WAIT_POLICY=PASSIVE
.venv/bin/python -m pytest -q "$@"
# Types: rag/ under the [tool.mypy] settings in pyproject.toml
.venv/bin/mypy rag
# The eval gate (eval/gates.yaml): the hand-labeled set with the default answerer and, side by side, the
# extractive one (gated even where generation is unavailable), then a 20-question sample of the public
# sets (5 from each); reports go to reports/.
.venv/bin/rag eval --compare
.venv/bin/rag eval --dataset all --limit 5
