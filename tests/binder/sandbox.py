#!/usr/bin/env python3
"""Run a command the way Binder runs a learner's notebook: unprivileged, filtered, small.

    python3 tests/binder/sandbox.py [--userns] [--memory 2g] [--cpus 1] -- COMMAND...

Run as root (it needs root only to set the sandbox up). COMMAND then runs:

- as uid/gid 1000 with no supplementary groups and ``no_new_privs`` (Binder's jovyan);
- under a seccomp filter in the spirit of Docker's default profile, which Binder's containers
  get: ``unshare``/``clone`` with ``CLONE_NEWUSER`` and ``mount``/``umount2``/``pivot_root``
  fail with EPERM, ``clone3`` with ENOSYS (its flags sit in memory a filter cannot read, so
  libc falls back to ``clone``). ``--userns`` lifts the user-namespace and mount rules: a
  rootless host (user namespaces allowed, no cgroup delegated);
- in its own mount namespace where /sys/fs/cgroup is read-only, /dev/kvm is /dev/null (Binder
  has no KVM), and /root is a readable tmpfs holding only what uid 1000 needs from it: the
  interpreter this checkout's venv points to (/root/.pyenv on these machines) and the checkout
  itself if it lives there;
- in a cgroup named ``pycont-binder-<pid>`` with Binder's limits: 1 CPU, 2 GB.

The last line on stderr is the sandbox's peak memory against its limit. The exit status is
COMMAND's. Everything the sandbox made (cgroup, processes) is gone when it returns; the mount
namespace goes with its last process.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

UID = GID = 1000
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC = 4096, 16384
MS_PRIVATE = 1 << 18
PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _mount(src: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            src.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {src} on {target}",
    )


def _mounts_under(top: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted({p for p in points if p == top or p.startswith(top + "/")})


def _seccomp_filter(userns: bool) -> object:
    import pyseccomp as sc

    filt = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    filt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    if not userns:
        newuser = sc.Arg(0, sc.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)
        filt.add_rule(eperm, "unshare", newuser)
        filt.add_rule(eperm, "clone", newuser)
        for name in ("mount", "umount2", "pivot_root", "fsopen", "fsmount", "open_tree"):
            filt.add_rule(eperm, name)
    return filt


def _under_root() -> list[str]:
    """The folders under /root that COMMAND needs: the base interpreter, this checkout."""
    wanted = {os.path.realpath(sys.base_prefix), REPO}
    under = sorted(p for p in wanted if p.startswith("/root/"))
    # a folder inside another kept one comes with it
    return [p for p in under if not any(p != q and p.startswith(q + "/") for q in under)]


def _enter(cgroup_procs: list[str], filt: object) -> None:
    """In the child, before exec: cgroup, mount namespace, user, no_new_privs, seccomp."""
    for procs in cgroup_procs:
        with open(procs, "w") as f:
            f.write("0")
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    for point in _mounts_under("/sys/fs/cgroup"):
        # each cgroup mount read-only in this namespace only (a per-mount flag: MS_BIND with
        # MS_REMOUNT, mount(2)): Binder's cgroup view can be read, not written
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
        _mount("none", point, None, flags)
    if os.path.exists("/dev/kvm"):
        _mount("/dev/null", "/dev/kvm", None, MS_BIND)
    keep = _under_root()
    if keep:
        # /root is mode 700: show what uid 1000 needs from it (the interpreter this checkout's
        # venv points to, the checkout itself) on a tmpfs, hide the rest of root's home
        held = []
        _mount("tmpfs", "/mnt", "tmpfs", 0, "mode=0755,size=1m")  # holds them meanwhile
        for i, path in enumerate(keep):
            hold = f"/mnt/pycont-binder-{i}"
            os.mkdir(hold)
            _mount(path, hold, None, MS_BIND | MS_REC)
            held.append(hold)
        _mount("tmpfs", "/root", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        for path, hold in zip(keep, held, strict=True):
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(hold, path, None, MS_BIND | MS_REC)
    os.setgroups([])
    os.setresgid(GID, GID, GID)
    os.setresuid(UID, UID, UID)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    filt.load()  # type: ignore[attr-defined]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--userns", action="store_true", help="allow user namespaces (rootless)")
    parser.add_argument("--memory", default="2g")
    parser.add_argument("--cpus", default="1")
    parser.add_argument("--home", help="HOME of uid 1000 (default: a fresh folder in /tmp)")
    parser.add_argument("command", nargs="+")
    ns = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("sandbox.py: run as root (it drops to uid 1000 itself)", file=sys.stderr)
        return 2

    from pycont.cgroups import for_container
    from pycont.cgroups.limits import Limits

    # SIGTERM (a CI timeout, kill) ends the sandbox through its finally: no cgroup, process
    # or folder is left behind
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    home = ""
    cg = for_container(f"pycont-binder-{os.getpid()}")
    cg.create()
    try:
        cg.apply(Limits.from_options(memory=ns.memory, cpus=ns.cpus))
        procs = sorted({os.path.join(p, "cgroup.procs") for p in cg.paths().values()})
        filt = _seccomp_filter(ns.userns)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SUDO_", "XDG_"))}
        env.update({"USER": "jovyan", "LOGNAME": "jovyan"})
        home = ns.home or tempfile.mkdtemp(prefix=f"pycont-binder-{os.getpid()}-home-")
        os.chown(home, UID, GID)
        env["HOME"] = home
        proc = subprocess.Popen(
            ns.command,
            env=env,
            preexec_fn=lambda: _enter(procs, filt),  # noqa: PLW1509 - single-threaded here
        )
        try:
            code = proc.wait()
        except (KeyboardInterrupt, SystemExit):
            proc.terminate()
            proc.wait()
            raise
        peak = cg.stats().memory_peak
        if peak:
            print(f"sandbox: peak memory {peak / 2**20:.0f} MiB of {ns.memory}", file=sys.stderr)
        return code
    finally:
        cg.kill_all()
        cg.destroy()
        if not ns.home and home:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
