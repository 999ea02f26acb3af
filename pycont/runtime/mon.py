"""pycont-mon, the monitor a detached container keeps instead of a Python shim (``mon.c``).

A shim is a whole interpreter: ~13 MiB per container for waiting on one process. Once the
container runs, a detached one's shim execve(2)s ``pycont-mon``: the same process, so still the
parent of the container's init (execve keeps children), at a few hundred KiB. When the init
exits, pycont-mon writes the code to ``<container>/exit`` and execs the shim's ``finish`` step.

Live restore: the init of a detached container no longer dies with its monitor (its parent-
death signal is cleared at exec). If the monitor is killed, the next command that reads the
container adopts it (:func:`adopt`): a new pycont-mon traces the init (ptrace(2),
PTRACE_SEIZE: a tracer's waitpid(2) reports how its tracee ends, as a parent's does) and records
it as above.

The program is compiled once per machine from ``mon.c`` with the system's C compiler, into a
cache keyed by the source's hash. ``PYCONT_MON=off`` keeps the Python shim; a path uses that
binary. Without a compiler, the Python shim supervises, as :func:`status` says.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from pycont import failpoints

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mon.c")
SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")
NAME = "pycont-mon"
ENV = "PYCONT_MON"
EXIT_FILE = "exit"
ENV_SYSPATH = "PYCONT_HELPER_SYSPATH"  # = launcher.ENV_SYSPATH: importing it would close a circle

_found: tuple[str | None, str] | None = None


def cache_dir() -> str:
    """Machine-wide as root (``/var/cache/pycont``), else ``$XDG_CACHE_HOME/pycont``."""
    if os.geteuid() == 0:
        return "/var/cache/pycont"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pycont")


def _compile(target: str) -> str:
    """Build ``target`` from mon.c; "" on success, else why not."""
    import shutil
    import subprocess
    import tempfile

    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return "no C compiler (cc) to build it: apt-get install gcc libc6-dev"
    build = os.path.dirname(target)  # <cache>/mon-<hash>, renamed into place when complete
    cache = os.path.dirname(build)
    os.makedirs(cache, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".pycont-mon-", dir=cache)
    try:
        out = os.path.join(tmp, NAME)
        try:
            res = subprocess.run(
                [cc, "-O2", "-o", out, SOURCE],
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
        except subprocess.TimeoutExpired:
            return f"{cc} took over 120 s to build {SOURCE}"
        if res.returncode != 0:
            first = (res.stderr.strip().splitlines() or ["?"])[0]
            return f"{cc} could not build {SOURCE}: {first}"
        with contextlib.suppress(OSError):  # another process built it first: keep theirs
            os.rename(tmp, build)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not os.access(target, os.X_OK):
        return f"{target} is not executable"
    _sweep(cache, os.path.basename(build))
    return ""


def _sweep(cache: str, keep: str) -> None:
    """Builds of older sources, and half-done ones a killed build left (an hour old): a running
    pycont-mon keeps its program, unlinked or not."""
    import shutil
    import time

    with os.scandir(cache) as it:
        for e in it:
            old = e.name.startswith("mon-") and e.name != keep
            stale = e.name.startswith(".pycont-mon-")
            with contextlib.suppress(OSError):
                if old or (stale and time.time() - e.stat().st_mtime > 3600):
                    shutil.rmtree(e.path)


def _find() -> tuple[str | None, str]:
    import hashlib

    choice = os.environ.get(ENV, "")
    if choice == "off":
        return None, f"{ENV}=off"
    if choice:
        ok = os.access(choice, os.X_OK)
        return (choice, "") if ok else (None, f"{ENV}={choice} is not an executable")
    try:
        with open(SOURCE, "rb") as f:
            key = hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError as err:
        return None, f"cannot read {SOURCE}: {err.strerror}"
    target = os.path.join(cache_dir(), f"mon-{key}", NAME)
    if os.access(target, os.X_OK):
        return target, ""
    try:
        why = _compile(target)
    except OSError as err:
        why = f"cannot build {NAME} in {cache_dir()}: {err.strerror}"
    return (None, why) if why else (target, "")


def binary() -> str | None:
    """The path of pycont-mon, built if needed; None if it cannot be (see :func:`status`)."""
    global _found
    if _found is None or (_found[0] is not None and not os.access(_found[0], os.X_OK)):
        _found = _find()
    return _found[0]


def status() -> str:
    """One line for ``pycont doctor``: who supervises detached containers, and why."""
    path = binary()
    assert _found is not None
    if path:
        return f"{NAME} ({path})"
    return f"a Python shim per container (~13 MiB): {_found[1]}"


def _finish_env() -> dict[str, str]:
    """The environment pycont-mon hands its finish step (``python -I -S``): our import path,
    for the third-party modules it needs (pyroute2), as the launcher passes it to a shim."""
    return {**os.environ, ENV_SYSPATH: os.pathsep.join(p for p in sys.path if p)}


def hand_over(path: str, pid: int, cdir: str, status_fd: int, lock_fd: int) -> None:
    """Become pycont-mon, parent of ``pid`` still (execve(2) keeps children). Returns only if
    the exec failed: the caller then goes on supervising in Python."""
    if not os.access(path, os.X_OK):
        return  # checked before anything is closed: the caller's descriptors stay usable
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in range(3):  # nothing of the container's stdio stays open here
        os.dup2(devnull, fd)
    os.close(devnull)
    os.set_inheritable(status_fd, True)
    os.set_inheritable(lock_fd, True)
    low = 3  # nothing else of the shim's is kept, but a failpoint log (tests)
    for fd in sorted({status_fd, lock_fd, *failpoints.kept_fds()}):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
    # SIGCHLD ignored would survive execve and make the kernel reap the init itself.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    env = _finish_env()
    argv = [NAME, "hold", str(pid), cdir, str(status_fd), sys.executable, SHIM]
    with contextlib.suppress(OSError):
        os.execve(path, argv, env)


def recorded_exit(cdir: str) -> int | None:
    """The code pycont-mon wrote when the init exited, if the finish step never recorded it."""
    try:
        with open(os.path.join(cdir, EXIT_FILE)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def exit_time(cdir: str) -> float:
    """When pycont-mon wrote the exit code (the file's mtime), 0 if it did not."""
    try:
        return os.stat(os.path.join(cdir, EXIT_FILE)).st_mtime
    except OSError:
        return 0.0


def clear_exit(cdir: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(cdir, EXIT_FILE))


def adopt(cdir: str, pid: int, start: int) -> int:
    """Watch a running container whose monitor died: a new pycont-mon traces its init.
    Returns the new monitor's pid, 0 if it could not (no binary, ptrace refused)."""
    import subprocess

    path = binary()
    if path is None:
        return 0
    env = _finish_env()
    try:
        res = subprocess.run(
            [NAME, "adopt", str(pid), str(start), cdir, sys.executable, SHIM],
            executable=path,
            capture_output=True,
            text=True,
            env=env,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return 0
    out = res.stdout.strip()
    return int(out) if out.isdigit() else 0
