"""What the test suite shares: ``requires()`` for privileged tests, and small polling helpers.

A privileged test declares what it needs; on a machine that does not give it, it is skipped
with that reason (never silently passed), and the suite counts how many such tests ran::

    @requires("root", "userns")
    def test_rootless(): ...

    pytestmark = requires("root")   # a whole module
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

# A test that needs any of these is "privileged": conftest counts how many of them ran.
PRIVILEGED_NEEDS = frozenset({"root", "userns"})


def _max_user_namespaces() -> int:
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def _has_filesystem(name: str) -> bool:
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == name for line in f if line.strip())
    except OSError:
        return False


def missing(need: str) -> str | None:
    """Why this machine does not give ``need``, or None when it does."""
    if need == "root":
        euid = os.geteuid()
        return None if euid == 0 else f"needs root (running as uid {euid})"
    if need == "userns":
        n = _max_user_namespaces()
        if n > 0:
            return None
        return f"needs user namespaces (/proc/sys/user/max_user_namespaces = {n})"
    if need == "overlay":
        return None if _has_filesystem("overlay") else "needs overlay (not in /proc/filesystems)"
    raise ValueError(f"requires(): unknown need {need!r}: accepted are root, userns, overlay")


def requires(*needs: str) -> pytest.MarkDecorator:
    """A skipif mark that skips unless the machine gives every need, with the reason why.

    The mark carries ``needs``: conftest adds the ``privileged`` marker to every test whose
    needs include root or user namespaces, and reports how many of those ran."""
    reasons = [r for r in (missing(n) for n in needs) if r]
    return pytest.mark.skipif(bool(reasons), reason="; ".join(reasons) or "", needs=needs)


def needs_of(item: pytest.Item) -> tuple[str, ...]:
    """Everything the test declared with requires() (on itself, its class or its module)."""
    found: list[str] = []
    for mark in item.iter_markers("skipif"):
        found.extend(mark.kwargs.get("needs", ()))
    return tuple(dict.fromkeys(found))


def wait_for(
    check: Callable[[], T], timeout: float = 15.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(interval)


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs: absent, or a zombie waiting to be reaped (proc(5))."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def mountinfo_lines(needle: str, pid: int | str = "self") -> list[str]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line.rstrip("\n") for line in f if needle in line]


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every PYCONT_ROOT this session's containers live in: the session's, and the rootless tests'.
# The leak check tells our leftovers from those of another pycont user of the same machine.
SESSION_ROOTS: list[str] = []


def register_root(path: str) -> str:
    SESSION_ROOTS.append(os.path.abspath(path))
    return path


# The store check (``pycont system check``) of every store a test removed, and of the ones left
# at the session's end (tests/conftest.py reports them): (is it an orphan?, one line).
STORE_FINDINGS: list[tuple[bool, str]] = []
STORES_CHECKED: list[str] = []


def check_store(root: str) -> None:
    """Run the store check on the PYCONT_ROOT ``root`` (if it has images) and keep its
    findings: a test's store must hold no orphan blob or layer when the test is done."""
    images = os.path.join(root, "images")
    if not os.path.isdir(images) or images in STORES_CHECKED:
        return
    from pycont.images import fsck
    from pycont.images.store import Store

    STORES_CHECKED.append(images)
    for f in fsck.check(Store(images)).problems:
        STORE_FINDINGS.append((f.orphan, f"{images}: {f.line()}"))


def remove_root(root: str) -> None:
    """Check a test's store (:func:`check_store`), then remove the folder."""
    from pycont.fsutil import remove_tree

    check_store(root)
    remove_tree(root)


def cli(
    *args: str,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m pycont ARGS`` in a new process, as a user types it; PYCONT_ROOT inherited.
    ``preexec_fn``: what the parent leaves to the CLI (an ignored signal, a blocked one)."""
    full = dict(os.environ)
    full["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, full.get("PYTHONPATH")) if p)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pycont", *args],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,  # noqa: PLW1509 - single-threaded child set-up, on purpose
    )


def containers_dir() -> str:
    return os.path.join(os.environ["PYCONT_ROOT"], "containers")


def container_ids() -> set[str]:
    """The containers in the store, by the folders that hold them."""
    d = containers_dir()
    return set(os.listdir(d)) if os.path.isdir(d) else set()


def pids_in_pid_namespace(inode: int) -> list[int]:
    """Host pids of the processes whose PID namespace has this inode."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/pid").st_ino == inode:
                found.append(int(entry))
        except OSError:  # gone, or a zombie: its namespaces are already released
            continue
    return found


def cgroup_dirs(name: str, max_depth: int = 5) -> list[str]:
    """Folders called ``name`` in every cgroup hierarchy (v1 controllers and v2)."""
    roots = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] in ("cgroup", "cgroup2"):
                roots.add(fields[4])
    found = []
    for top in sorted(roots):
        for dirpath, dirnames, _ in os.walk(top):
            if name in dirnames:
                found.append(os.path.join(dirpath, name))
            if os.path.relpath(dirpath, top).count(os.sep) + 1 >= max_depth:
                dirnames.clear()
    return found


def take_back_cgroups(name: str) -> list[str]:
    """The cgroup folders called ``name`` that are left; each one is removed too (when empty)
    so that a failing test does not leave its leak to the tests after it."""
    left = cgroup_dirs(name)
    for d in sorted(left, key=len, reverse=True):
        for sub, _dirs, _files in sorted(os.walk(d, topdown=False), key=lambda w: -len(w[0])):
            # a cgroup that still has processes stays: the assertion that follows says so
            with contextlib.suppress(OSError):
                os.rmdir(sub)
        parent = os.path.dirname(d)
        if os.path.basename(parent) == "pycont":  # pycont.cgroups.PARENT, gone when empty
            with contextlib.suppress(OSError):
                os.rmdir(parent)
    return left
