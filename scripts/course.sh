#!/usr/bin/env bash
# Open the course in JupyterLab: bash scripts/course.sh [extra jupyter lab options]
# The bootstrap's course mode installs only what the course needs: as root, the few Debian
# packages the chapters use; in .venv, pycont with its `notebook` extra, the "pycont" kernelspec
# and the course's JupyterLab settings (scripts/test.sh installs the whole toolchain instead).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

bash scripts/bootstrap.sh course

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
