#!/usr/bin/env bash
# Open the course in JupyterLab: bash scripts/course.sh [extra jupyter lab options]
# As root, the bootstrap first installs the Debian packages the experiments need.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

bash scripts/bootstrap.sh

args=(--notebook-dir=notebooks --ip=127.0.0.1 --no-browser)
if [ "$(id -u)" = 0 ]; then
    args+=(--allow-root)
fi
if [ -e notebooks/00-index.ipynb ]; then
    # The positional file is opened only when jupyter starts a browser; with --no-browser the
    # printed link is default_url, so point that at the index too.
    args+=(--LabApp.default_url=/lab/tree/00-index.ipynb notebooks/00-index.ipynb)
fi

exec .venv/bin/jupyter lab "${args[@]}" "$@"
