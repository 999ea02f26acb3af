#!/usr/bin/env bash
# Shared set-up for scripts/course.sh and scripts/test.sh. Idempotent: a second run only checks.
#
#   bash scripts/bootstrap.sh course   # what the course needs (scripts/course.sh)
#   bash scripts/bootstrap.sh [dev]    # the whole toolchain of the tests (scripts/test.sh)
#
#   1. as root, apt-get install the Debian packages of that mode, if any is missing;
#   2. create a virtualenv at .venv in the repo (python3.11 from PATH, else /usr/bin/python3);
#   3. pip install -e '.[notebook]' (course) or -e '.[dev]' (dev) into it, unless that mode's
#      stamp in .venv is newer than pyproject.toml ('.[dev]' holds '.[notebook]': a dev venv
#      serves the course too);
#   4. scripts/lab-setup.sh: the "pycont" kernelspec the notebooks name, and the course's
#      JupyterLab settings (no news pop-up), both inside the venv.
#
# Run it, or source it with its mode (`. scripts/bootstrap.sh dev`): the work happens in a
# subshell either way, so a sourcing shell keeps its options and its fds.

# What the chapters use (binder/apt.txt is the same list for Binder's Ubuntu, checked by
# tests/unit/test_binder.py): the busybox image's static binary, ps, util-linux's lsns, setpriv,
# ipcmk and unshare, capsh, the libseccomp that pyseccomp loads, chapter 05's registry,
# chapter 10's podman, chapter 09's qemu (and the lab VM's, with mkfs.ext4 for its /tmp),
# chapter 08's ip and tc (iproute2), and a C compiler for pycont-mon, the monitor of detached
# containers (pycont/runtime/mon.c, built once on first use).
PYCONT_COURSE_APT_PACKAGES=(busybox-static procps util-linux libcap2-bin libseccomp2
    docker-registry podman qemu-system-x86 iproute2 e2fsprogs gcc libc6-dev)
# What the whole test suite adds: the peers the benchmarks and interop tests compare with, image
# tools (buildah for the build interop test, GNU cpio for the VM root tests), the cgroup v2
# VM's mkfs, slirp4netns for the user-mode network's tests, mmdebstrap for the Debian base of
# tests/distro.py, and Chromium for the browser tests.
PYCONT_DEV_APT_PACKAGES=("${PYCONT_COURSE_APT_PACKAGES[@]}" psmisc crun runc time
    skopeo umoci buildah cpio slirp4netns mmdebstrap chromium chromium-driver)

pycont_bootstrap() (
    # Errors are checked explicitly (die) as well: set -e is void when the caller writes
    # `. scripts/bootstrap.sh || ...`.
    set -euo pipefail

    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    cd "$repo"

    log() { printf 'bootstrap: %s\n' "$*" >&2; }
    die() { log "$*"; exit 1; }

    mode=${1:-dev}
    case "$mode" in
        course)
            packages=("${PYCONT_COURSE_APT_PACKAGES[@]}")
            extra=notebook
            ;;
        dev)
            packages=("${PYCONT_DEV_APT_PACKAGES[@]}")
            extra=dev
            ;;
        *) die "unknown mode '$mode' (course or dev)" ;;
    esac
    is_installed() {
        [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
    }
    apt_updated=0
    apt_install() {
        if [ "$apt_updated" = 0 ]; then
            log "apt-get update"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
            apt_updated=1
        fi
        log "apt-get install $*"
        # Packages such as docker-registry start a system service when installed; the tests
        # start their own, on loopback. policy-rc.d exit 101 tells invoke-rc.d not to start any.
        local made_policy=0 rc=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
            made_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
            || rc=$?
        [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
        return "$rc"
    }

    # Two bootstraps at once (course and tests) must not build the same venv together.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"${TMPDIR:-/tmp}/pycont-bootstrap.$(id -u).lock"
        flock 9
    fi

    # --- 1. Debian packages -------------------------------------------------------------------
    if command -v dpkg-query >/dev/null 2>&1; then
        missing=()
        for pkg in "${packages[@]}"; do
            is_installed "$pkg" || missing+=("$pkg")
        done
        if [ "${#missing[@]}" -gt 0 ]; then
            if [ "$(id -u)" = 0 ]; then
                apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed"
            else
                log "not root: cannot install ${missing[*]}; pycont doctor says what still works"
            fi
        fi
    fi

    # --- 2. the virtualenv --------------------------------------------------------------------
    venv="$repo/.venv"
    # A venv whose interpreter vanished (pyenv upgrade) or that has no pip is built again.
    if ! { [ -x "$venv/bin/pip" ] && "$venv/bin/python" -c '' 2>/dev/null; }; then
        py=""
        if command -v python3.11 >/dev/null 2>&1 && python3.11 -c '' 2>/dev/null; then
            py=$(command -v python3.11)
        elif [ -x /usr/bin/python3 ]; then
            py=/usr/bin/python3
        fi
        if [ -z "$py" ] || ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            die "need Python >= 3.11 (python3.11 on PATH or /usr/bin/python3)"
        fi
        # Debian splits ensurepip out of the interpreter: without python3-venv, `-m venv` fails
        # half-way and leaves a .venv without pip behind.
        if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
                apt_install python3-venv || die "apt-get install python3-venv failed"
            else
                die "$py has no ensurepip: install python3-venv (as root) and run again"
            fi
        fi
        log "creating $venv with $py"
        rm -rf "$venv"
        "$py" -m venv "$venv" || { rm -rf "$venv"; die "$py -m venv $venv failed"; }
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install -q --upgrade pip \
            || die "pip install --upgrade pip failed"
    fi

    # --- 3. pycont and its tools --------------------------------------------------------------
    # One stamp per extra; the dev one keeps its old name (.pycont-stamp), so that a venv made
    # before the modes existed is not installed again.
    stamp_of() {
        if [ "$1" = dev ]; then echo "$venv/.pycont-stamp"; else echo "$venv/.pycont-stamp-$1"; fi
    }
    fresh() { [ -e "$1" ] && [ "$1" -nt "$repo/pyproject.toml" ]; }
    stamp=$(stamp_of "$extra")
    if ! fresh "$stamp" && ! { [ "$extra" = notebook ] && fresh "$(stamp_of dev)"; }; then
        log "pip install -e '.[$extra]' (a few minutes the first time)"
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install -q -e "${repo}[$extra]" \
            --config-settings editable_mode=compat \
            || die "pip install -e '.[$extra]' failed"
        touch "$stamp"
    fi
    # Byte-compile pycont: with PYTHONDONTWRITEBYTECODE set (as on these machines) every CLI
    # start and every helper would otherwise compile the package again (~25 ms each).
    "$venv/bin/python" -m compileall -q "$repo/pycont" >/dev/null || die "compileall failed"
    # pycont-mon, the monitor of detached containers, built now rather than at the first `run -d`
    # (pycont/runtime/mon.py says why not, if it cannot be: `pycont doctor` too).
    "$venv/bin/python" -c 'from pycont.runtime import mon; print("bootstrap: container monitor:", mon.status())' >&2 \
        || log "pycont-mon could not be built; detached containers keep a Python shim"

    # --- 4. the kernelspec and the JupyterLab settings ----------------------------------------
    bash "$repo/scripts/lab-setup.sh" "$venv/bin/python" || die "scripts/lab-setup.sh failed"
)

# Run when executed; when sourced, run too, but hand the status back instead of exiting the caller.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    pycont_bootstrap "$@"
    exit
else
    pycont_bootstrap "$@"
fi
