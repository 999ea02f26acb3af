#!/usr/bin/env python3
"""Run pytest inside a VM whose /sys/fs/cgroup is a real cgroup v2 hierarchy.

    python3 tests/vm/run_v2.py                      # -m cgroup_v2 tests/integration -q ...
    python3 tests/vm/run_v2.py tests/integration/test_cgroups_v2.py -x -q
    python3 tests/vm/run_v2.py --vm-timeout 3600 -m cgroup_v2 tests/integration

Why: the development and CI machines are a cgroup v1 hybrid; the v2 driver needs a pure v2
host. The VM boots Debian's kernel with ``cgroup_no_v1=all`` under qemu (TCG where KVM cannot
boot it), sees this machine's whole filesystem read-only (virtio-9p) under a tmpfs overlay,
and runs ``<repo>/.venv/bin/python -m pytest ARGS`` in the repo folder, as root, with
PYCONT_ROOT in the guest's own /tmp (not the host's); the host's /var/lib/pycont is hidden, so
the guest starts with no pycont store. ``-p no:nbval`` is added unless an argument starts with
--nbval (loading nbval costs ~4 s on the host, over a minute under TCG). Needs root: it
installs qemu-system-x86 and busybox-static with apt-get when missing; the kernel is cached
in /var/cache/pycont/vm.

Every argument not starting with ``--vm-`` goes to pytest. Runner options:
  --vm-timeout S     whole-VM limit in seconds (default 1800); qemu is killed after it
  --vm-memory SIZE   guest RAM (default 1G)       --vm-smp N   guest CPUs (default 2)
  --vm-machine M     microvm (default) or q35     --vm-python PATH   guest interpreter
  --vm-cgroup-leaf P cgroup the tests run in (default /ci.slice/test.scope; "/" = root)
  --vm-scratch FS    the guest's /tmp (so PYCONT_ROOT and pytest's tmp_path): ext4 (default),
                     a sparse 4G disk image on virtio-blk, deleted afterwards; or tmpfs. The
                     6.1 kernel's tmpfs has no user.* xattrs (rootless overlay needs them) and
                     is no block device (io.max tests need one): ext4 gives both, at no
                     measurable cost
  --vm-quiet         print the guest's output at the end instead of live

Exit status: pytest's inside the guest (5 = no test selected: a failure, coverage is zero);
124 when the VM timed out, 125 when it could not boot or the runner failed.
Last line: ``cgroup v2 VM: 12 passed, 0 skipped (kernel 6.1.0-56-amd64, TCG, boot 3.4 s,
total 95 s)``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

DEFAULT_PYTEST_ARGS = ["-m", "cgroup_v2", "tests/integration", "-q", "-p", "no:cacheprovider"]
GUEST_PYCONT_ROOT = "/tmp/pycont-root"  # the guest's own /tmp (ext4 disk or tmpfs)
# Forbidden under the repo: the guest mounts its own filesystems there, hiding the host's.
HIDDEN_IN_GUEST = ("/tmp", "/run", "/dev", "/proc", "/sys")
OPTIONS = {"timeout", "memory", "smp", "machine", "python", "cgroup-leaf", "scratch", "quiet"}
FLAGS = {"quiet"}

_SUMMARY_RE = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+|no tests ran) in [\d.]+s\b.*$")
_COUNT_RE = re.compile(r"(\d+) ([a-z]+)")


def split_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """(runner options, pytest arguments): ``--vm-NAME[=VALUE]`` are the runner's."""
    opts: dict[str, str] = {}
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if not arg.startswith("--vm-"):
            rest.append(arg)
            continue
        name, eq, value = arg[len("--vm-") :].partition("=")
        if name not in OPTIONS:
            raise SystemExit(f"run_v2: unknown option --vm-{name} (known: {sorted(OPTIONS)})")
        if name in FLAGS:
            opts[name] = "1"
        elif eq:
            opts[name] = value
        else:
            try:
                opts[name] = next(it)
            except StopIteration:
                raise SystemExit(f"run_v2: --vm-{name} needs a value") from None
    return opts, rest


def parse_pytest_summary(text: str) -> dict[str, int] | None:
    """Counts from pytest's last summary line ("3 passed, 1 skipped in 2.1s"), or None.

    Plural forms are folded ("errors" -> "error", "warnings" -> "warning").
    """
    for line in reversed(text.splitlines()):
        m = _SUMMARY_RE.match(line.strip())
        if not m:
            continue
        counts: dict[str, int] = {}
        for n, word in _COUNT_RE.findall(m.group(1)):
            word = {"errors": "error", "warnings": "warning"}.get(word, word)
            counts[word] = counts.get(word, 0) + int(n)
        return counts
    return None


def summary_line(
    counts: dict[str, int] | None,
    *,
    kernel: str,
    accel: str,
    boot: float | None,
    total: float,
    status: str = "",
) -> str:
    if counts is None:
        what = status or "no pytest summary found"
    else:
        parts = [f"{counts.get('passed', 0)} passed", f"{counts.get('skipped', 0)} skipped"]
        parts += [
            f"{n} {w}s" if n != 1 and w in ("warning", "error") else f"{n} {w}"
            for w, n in counts.items()
            if w not in ("passed", "skipped")
        ]
        what = ", ".join(parts) + (f" [{status}]" if status else "")
    boot_s = f"boot {boot:.1f} s" if boot is not None else "no boot"
    return f"cgroup v2 VM: {what} (kernel {kernel}, {accel}, {boot_s}, total {total:.0f} s)"


def main(argv: list[str]) -> int:
    # CI cancels with SIGTERM: exit through Python so that qemu is killed and temp files go
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    opts, pytest_args = split_args(argv)
    pytest_args = pytest_args or DEFAULT_PYTEST_ARGS
    if not any(a.startswith("--nbval") for a in pytest_args):
        # nbval loads nbformat -> jsonschema (a grammar compiled at import): ~4 s on the host,
        # ~80 s under TCG, for nothing when no notebook is tested.
        pytest_args = ["-p", "no:nbval", *pytest_args]
    python = opts.get("python") or os.path.join(REPO, ".venv", "bin", "python")
    if not os.access(python, os.X_OK):
        print(
            f"run_v2: no interpreter at {python} (make the venv, or --vm-python)", file=sys.stderr
        )
        return 125
    # A checkout under the guest's own /tmp or /run (CI may clone there) is shown again on top.
    keep = [REPO] if REPO.startswith(("/tmp/", "/run/")) else []
    if not keep and any(h == REPO or REPO.startswith(h + "/") for h in HIDDEN_IN_GUEST):
        print(f"run_v2: the repo {REPO} is under a path the guest replaces", file=sys.stderr)
        return 125
    leaf = opts.get("cgroup-leaf")
    start = time.monotonic()

    from pycont.vm import VMError, ensure_kernel
    from pycont.vm.guest import DEFAULT_LEAF, run_in_guest
    from pycont.vm.lab import CONTAINER_NET_MODULES
    from pycont.vm.qemu import choose_accel

    try:
        kernel = ensure_kernel(log=lambda msg: print(f"cgroup v2 VM: {msg}", flush=True))
    except VMError as err:
        print(f"run_v2: {err}", file=sys.stderr)
        return 125
    accel = choose_accel(kernel)
    command = f"mkdir -p {GUEST_PYCONT_ROOT} && exec {shlex.quote(python)} -m pytest " + shlex.join(
        pytest_args
    )
    quiet = "quiet" in opts
    print(f"cgroup v2 VM: kernel {kernel.version}, {accel.reason}", flush=True)
    print(f"cgroup v2 VM: $ cd {REPO} && {command}", flush=True)

    def live(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        res = run_in_guest(
            command,
            cwd=REPO,
            env={"PYCONT_ROOT": GUEST_PYCONT_ROOT, "TMPDIR": "/tmp", "PYTHONUNBUFFERED": "1"},
            kernel=kernel,
            cgroup_leaf=None if leaf == "/" else (leaf or DEFAULT_LEAF),
            memory=opts.get("memory", "1G"),
            smp=int(opts.get("smp", "2")),
            machine=opts.get("machine", "microvm"),
            timeout=float(opts.get("timeout", "1800")),
            on_output=None if quiet else live,
            accel=accel,
            scratch=opts.get("scratch", "ext4"),
            keep=keep,
            # the containers' default network: veth pairs on a bridge (pycont.net)
            extra_modules=CONTAINER_NET_MODULES,
        )
    except VMError as err:
        print(f"run_v2: {err}", file=sys.stderr)
        return 125
    if quiet:
        sys.stdout.write(res.console_text)
    total = time.monotonic() - start
    counts = parse_pytest_summary(res.console_text)
    if res.timed_out:
        status, code = f"VM timed out after {res.total_seconds:.0f} s, qemu killed", 124
    elif res.exit_code is None:
        status, code = (
            f"the guest ended without an exit code (qemu exit {res.qemu_returncode})",
            125,
        )
    else:
        code = res.exit_code
        status = "" if code == 0 else f"pytest exit {code}"
    if counts is None or res.exit_code is None:
        print("\n--- last lines of the console ---\n" + res.tail(25), file=sys.stderr)
    privileged = re.findall(r"privileged tests: [^\n-]*", res.console_text)
    if privileged:
        print(f"cgroup v2 VM: {privileged[-1].strip()}")
    print(
        summary_line(
            counts,
            kernel=kernel.version,
            accel=accel.name.upper(),
            boot=res.boot_seconds,
            total=total,
            status=status,
        ),
        flush=True,
    )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
