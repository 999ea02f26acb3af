#!/usr/bin/env bash
# Put chapters back as they were committed: bash scripts/reset-chapter.sh NN [NN...] | all
#
# Running a chapter saves the learner's answers and outputs into its notebook; this takes the
# committed notebook back from git (git checkout -- notebooks/NN-*.ipynb). Close the chapter in
# JupyterLab first: an open notebook would be saved over the reset one.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if [ "$#" = 0 ]; then
    echo "usage: bash scripts/reset-chapter.sh NN [NN...] | all   (e.g. 03)" >&2
    exit 2
fi
files=()
for arg in "$@"; do
    if [ "$arg" = all ]; then
        files+=(notebooks/[0-9][0-9]-*.ipynb)
        continue
    fi
    case "$arg" in
        [0-9] | [0-9][0-9]) num=$(printf '%02d' "$((10#$arg))") ;;
        *) echo "reset-chapter: '$arg' is not a chapter number (e.g. 03) or 'all'" >&2; exit 2 ;;
    esac
    found=(notebooks/"$num"-*.ipynb)
    if [ ! -e "${found[0]}" ]; then
        echo "reset-chapter: no notebooks/$num-*.ipynb" >&2
        exit 2
    fi
    files+=("${found[@]}")
done
git checkout -- "${files[@]}"
for f in "${files[@]}"; do
    echo "reset $f"
done
