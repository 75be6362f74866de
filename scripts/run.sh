#!/usr/bin/env bash
# Set up, index corpus/ (incrementally) and start the app on http://127.0.0.1:7860.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/rag ingest
exec .venv/bin/rag serve "$@"
