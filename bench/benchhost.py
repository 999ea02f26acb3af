"""Host-side pieces shared by supervisor_memory.py and cell_latency.py.

Reading processes from /proc (PSS and RSS from smaps_rollup, namespaces, which run a process
belongs to), podman's private store with a busybox image imported from busybox-static (podman
cannot pull here), and the end-of-run clean-up with its leak check. Standard library only.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import start_latency as sl  # noqa: E402  (read_text, build_rootfs)

PREFIX = "pcbench"
PACKAGES = ("busybox-static", "podman", "conmon", "runc")
# podman's default rlimits exceed a process's hard limits here (see /work/shared/peers);
# no network: podman's default CNI network adds iptables rules, which this host must not get.
PODMAN_RUN = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
IMAGE = f"localhost/{PREFIX}-busybox:latest"
TIMEOUT = 60.0


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def sh(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT
    )
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    return r


# -- /proc ---------------------------------------------------------------------------------
def pids() -> set[int]:
    return {int(e) for e in os.listdir("/proc") if e.isdigit()}


def started(pid: int) -> tuple[int, str]:
    """(pid, start time): proc(5) stat field 22, so a reused pid is not the same process."""
    stat = sl.read_text(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()
    return pid, stat[19] if len(stat) > 19 else ""


def snapshot() -> set[tuple[int, str]]:
    return {started(p) for p in pids()}


def comm(pid: int) -> str:
    return sl.read_text(f"/proc/{pid}/comm")


def link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def smaps_kib(pid: int) -> dict[str, int]:
    """Rss and Pss of a process (proc(5), /proc/PID/smaps_rollup: PSS splits shared pages)."""
    out = {}
    for line in sl.read_text(f"/proc/{pid}/smaps_rollup").splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss", "Pss_Anon", "Pss_File"):
            out[key.lower()] = int(rest.split()[0])
    return out


def belongs_to(pid: int, root: str) -> str:
    """Why ``pid`` is this run's (empty: it is not): PYCONT_ROOT in its environment, or its cwd,
    command line or an open descriptor inside the root."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            if f"PYCONT_ROOT={root}".encode() in f.read().split(b"\0"):
                return "PYCONT_ROOT in environ"
    except OSError:
        return ""
    if link(f"/proc/{pid}/cwd").startswith(root):
        return "cwd in PYCONT_ROOT"
    if root in sl.read_text(f"/proc/{pid}/cmdline").replace("\0", " "):
        return "PYCONT_ROOT in cmdline"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return ""
    if any(link(f"/proc/{pid}/fd/{fd}").startswith(root) for fd in fds):
        return "open descriptor in PYCONT_ROOT"
    return ""


def proc_row(pid: int, why: str) -> dict[str, Any] | None:
    mem = smaps_kib(pid)
    if "pss" not in mem:
        return None  # gone, or a kernel thread
    cmd = sl.read_text(f"/proc/{pid}/cmdline").replace("\0", " ").strip()
    return {"pid": pid, "comm": comm(pid), **mem, "cmdline": cmd[:200], "why": why}


# -- pycont and podman ------------------------------------------------------------
def pycont_cli() -> list[str]:
    venv = os.path.join(REPO, ".venv", "bin", "pycont")
    return [venv] if os.path.exists(venv) else [sys.executable, "-m", "pycont"]


def podman_base(work: str) -> list[str]:
    p = os.path.join(work, "podman")
    return [
        "podman",
        *("--root", f"{p}/root", "--runroot", f"{p}/run", "--tmpdir", f"{p}/tmp"),
        *("--storage-driver", "overlay", "--cgroup-manager=cgroupfs", "--events-backend=file"),
        *("--runtime", "runc"),
    ]


def podman_image(work: str) -> None:
    """podman cannot pull here: import a busybox-static root (as /work/shared/peers does)."""
    rootfs = os.path.join(work, "rootfs")
    sl.build_rootfs(rootfs)
    tar = os.path.join(work, "rootfs.tar")
    sh(["tar", "-C", rootfs, "-cf", tar, "."])
    sh([*podman_base(work), "import", tar, IMAGE])


# -- clean-up -------------------------------------------------------------------------------
def libpod_cgroups() -> set[str]:
    """What podman's cgroupfs manager leaves behind (see /work/shared/peers/lib.sh)."""
    return {
        *glob.glob("/sys/fs/cgroup/*/libpod_parent"),
        *glob.glob("/sys/fs/cgroup/*/*/libpod_parent"),
    }


def cgroups_named(ids: list[str]) -> list[str]:
    found = []
    for top in glob.glob("/sys/fs/cgroup/*"):
        for dirpath, dirs, _ in os.walk(top):
            found += [os.path.join(dirpath, d) for d in dirs if any(i in d for i in ids)]
            if dirpath.count("/") > 6:
                dirs.clear()
    return found


def cleanup(ctx: dict[str, Any], cg_before: set[str]) -> list[str]:
    """Remove what this run made; return what is still there."""
    work, root, pc = ctx["work"], ctx["root"], ctx["pc"]
    cdir = os.path.join(root, "containers")
    ids = (
        [e for e in os.listdir(cdir) if os.path.isdir(os.path.join(cdir, e))]
        if os.path.isdir(cdir)
        else []
    )
    if ids:
        sh([*pc, "rm", "-f", *ids], check=False)
    # the store's default bridge stays up after its last container, as docker0: this run's goes
    sh([*pc, "system", "prune", "-f"], check=False)
    if os.environ.get("PYCONT_CLI_SERVER_DIR", "").startswith(work):
        sh([*pc, "system", "server", "stop"], check=False)  # the run's own command server
    for pid in ctx["workload_pids"]:  # a workload orphaned by the live-restore check
        if comm(pid) == "sleep" and link(f"/proc/{pid}/ns/pid") != link("/proc/self/ns/pid"):
            os.kill(pid, signal.SIGKILL)
    if os.path.isdir(os.path.join(work, "podman")):
        P = podman_base(work)
        sh([*P, "rm", "-af", "-t", "0"], check=False)
        sh([*P, "rmi", "-af"], check=False)
    for d in libpod_cgroups() - cg_before:
        subprocess.run(["find", d, "-depth", "-type", "d", "-delete"], capture_output=True)
    mounts = [ln.split()[4] for ln in sl.read_text("/proc/self/mountinfo").splitlines()]
    for m in sorted((m for m in mounts if m.startswith(work)), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
    left = [m for m in sl.read_text("/proc/self/mountinfo").splitlines() if work in m]
    sys.path.insert(0, REPO)
    from pycont.net.networks import default_bridge

    bridge = default_bridge(root)
    if os.path.lexists(f"/sys/class/net/{bridge}"):
        left.append(f"network device {bridge}")
    for pid in pids() - {os.getpid()}:
        cmd = sl.read_text(f"/proc/{pid}/cmdline").replace("\0", " ")
        named = work in cmd or f"{PREFIX}-m" in cmd or f"{PREFIX}-lr" in cmd
        if named or belongs_to(pid, root) or (pid in ctx["workload_pids"] and comm(pid) == "sleep"):
            left.append(f"process {pid} {cmd.strip()}")
    left += cgroups_named(ctx["pycont_ids"] + ctx["podman_ids"])
    return left + ([work] if os.path.exists(work) else [])


def save_and_judge(kind: str, doc: dict[str, Any], left: list[str]) -> int:
    """Write ``doc`` to bench/results/<kind>-<stamp>.json, say where, and the leak check's
    verdict: the script's exit code."""
    import datetime
    import json

    os.makedirs(sl.RESULTS_DIR, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    path = os.path.join(sl.RESULTS_DIR, f"{kind}-{stamp}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    print(f"\nall samples: {os.path.relpath(path)}")
    if left:
        print(f"LEAK CHECK FAILED: {left}", file=sys.stderr)
        return 1
    log("leak check: no container, process, mount or cgroup of this run left")
    return 0
