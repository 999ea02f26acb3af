#!/usr/bin/env bash
# The course's Jupyter set-up, in the environment of PYTHON (the venv of scripts/bootstrap.sh, or
# Binder's conda environment from binder/postBuild). Idempotent.
#
#   bash scripts/lab-setup.sh PYTHON
#
#   1. the "pycont" kernelspec ("Python 3 (pycont)") that every notebook names, in PYTHON's
#      prefix: python -m pycont.vm.labkernel install --sys-prefix;
#   2. the course's JupyterLab settings, scripts/jupyterlab-settings.json, as
#      <app dir>/settings/overrides.d/pycont.json: no "Would you like to get notified about
#      official Jupyter news?" pop-up, no update check. overrides.d, not overrides.json, so that
#      an overrides.json of the machine's own stays as it is (jupyterlab_server merges both).
set -euo pipefail

py=${1:?usage: bash scripts/lab-setup.sh PYTHON}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

"$py" -m pycont.vm.labkernel install --sys-prefix >/dev/null

# JupyterLab's application folder: {sys.prefix}/share/jupyter/lab unless JUPYTERLAB_DIR (or a
# --user install of JupyterLab) says otherwise; `jupyter lab` reads its
# settings/overrides.d/*.json at every start. Asking jupyterlab costs seconds: not when the
# settings are already in the usual place.
settings="$repo/scripts/jupyterlab-settings.json"
prefix=$("$py" -c 'import sys; print(sys.prefix)')
if [ -z "${JUPYTERLAB_DIR:-}" ] \
    && cmp -s "$settings" "$prefix/share/jupyter/lab/settings/overrides.d/pycont.json"; then
    exit 0
fi
app_dir=$("$py" -c 'from jupyterlab.commands import get_app_dir; print(get_app_dir())')
mkdir -p "$app_dir/settings/overrides.d"
install -m 644 "$settings" "$app_dir/settings/overrides.d/pycont.json"
