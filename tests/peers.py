"""The real peers the tests compare pycont with: podman (on runc, or on pycont's own OCI
runtime), skopeo, umoci. Run as these machines need them (/work/shared/peers/lib.sh): cgroupfs,
rlimits below the hard limits, private storage in a temporary folder; afterwards nothing is
left: no podman image or container, no mount below that folder, no libpod cgroup that was not
there before, no folder podman made for itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

BUSYBOX = "docker.io/library/busybox:latest"
# podman's default rlimits (nofile/nproc 1048576) exceed the hard limits of root without
# CAP_SYS_RESOURCE here: "setrlimit RLIMIT_NOFILE: Operation not permitted".
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")
# Folders podman and skopeo make for themselves whatever --root says (the blob info cache,
# network configs, which buildah bud makes under /etc even with --root): removed afterwards when
# they were not there before. (A root-only /etc/containers/networks also breaks the lab VM's
# guest, which reads the host's / as uid 1000: chapter 10's podman there.)
PODMAN_SYSTEM_DIRS = ("/var/lib/containers", "/run/containers", "/etc/containers/networks")
Run = Callable[..., subprocess.CompletedProcess[str]]


def run(
    *cmd: str | os.PathLike[str],
    check: bool = True,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    stdin: int | None = None,
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [os.fspath(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=stdin,
    )
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {r.returncode}: {r.stderr.strip()}")
    return r


def ensure_tools(tools: dict[str, str]) -> None:
    """The binaries of ``tools`` ({binary: Debian package}), installed when missing; skips the
    test with the reason when that fails."""
    missing = sorted({pkg for binary, pkg in tools.items() if shutil.which(binary) is None})
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *missing]):
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                why = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
                pytest.skip(f"needs {', '.join(missing)}; `{' '.join(cmd)}` failed: {why}")
    still = [b for b in tools if shutil.which(b) is None]
    if still:
        pytest.skip(f"needs {', '.join(still)}: not on PATH after apt-get install")


@contextlib.contextmanager
def scratch(path: Path) -> Iterator[Path]:
    """``path`` for a module's work; its mounts are undone and it is removed at the end, with
    the system folders podman made for itself."""
    existed = {d: os.path.exists(d) for d in PODMAN_SYSTEM_DIRS}
    try:
        yield path
    finally:
        unmount_below(path)
        run("rm", "-rf", "--one-file-system", path, check=False)
        for d, was_there in existed.items():
            if not was_there:
                shutil.rmtree(d, ignore_errors=True)


def unmount_below(path: Path) -> None:
    """umount -l every mount at or below ``path``, the deepest first."""
    prefix = os.fspath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    for point in sorted(
        (p for p in points if p == prefix or p.startswith(prefix + "/")), reverse=True
    ):
        run("umount", "-l", point, check=False)


def libpod_cgroups() -> set[str]:
    """podman's cgroupfs manager leaves libpod_parent folders behind (lib.sh: snapshot_cgroups)."""
    found: set[str] = set()
    for top in Path("/sys/fs/cgroup").iterdir():
        for depth in ("libpod_parent", "*/libpod_parent", "libpod_parent/*"):
            found.update(os.fspath(p) for p in top.glob(depth) if p.is_dir())
    return found


@contextlib.contextmanager
def podman(work: Path, runtime: str = "runc") -> Iterator[Run]:
    """``podman ARGS`` with private storage under ``work`` and the given OCI runtime (a name
    or a path); every container, image, mount and cgroup it made goes at the end."""
    base = work / "podman"
    cmd = (
        "podman",
        *("--root", base / "root", "--runroot", base / "run", "--tmpdir", base / "tmp"),
        *("--cgroup-manager=cgroupfs", "--events-backend=file", "--runtime", runtime),
        # Its own network configs: else podman makes /etc/containers/networks (0700, root's),
        # which the lab VM's guest, reading the host's / as uid 1000, then cannot open.
        *("--network-config-dir", base / "networks"),
    )
    env = {**os.environ, "TMPDIR": os.fspath(work)}
    cgroups_before = libpod_cgroups()

    def podman_run(
        *args: str | os.PathLike[str], check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return run(*cmd, *args, check=check, env=env, timeout=timeout)

    try:
        yield podman_run
    finally:
        podman_run("rm", "-af", check=False)
        podman_run("rmi", "-af", check=False)
        unmount_below(base)
        for d in sorted(libpod_cgroups() - cgroups_before, key=len, reverse=True):
            for sub, _dirs, _files in sorted(os.walk(d, topdown=False), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(sub)
        assert libpod_cgroups() <= cgroups_before, "podman's cgroups left behind"
