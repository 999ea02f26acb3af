"""Leak check: list the kernel objects pycont made and did not take back.

Every object pycont creates carries its name (DESIGN.md, "Process model"): mount sources and
cgroup folders contain ``pycont``, network devices start with ``pc``, named netns with ``pycont``.
So after the test suite, anything on this machine with that name is a leak. Stdlib only, so it
runs even when the package or the venv is broken.

    python tests/leaks.py        # prints each leak and exits 1, or exits 0
    from leaks import find_leaks # -> list[str], one line per leak
"""

from __future__ import annotations

import contextlib
import os
import sys

MOUNTINFO = "/proc/self/mountinfo"
CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_MAX_DEPTH = 4
NET_CLASS = "/sys/class/net"
NETNS_DIR = "/run/netns"
# The runtime's per-container state folders when it runs as root: /run/pycont/containers, and
# pycont.paths.containers_dir() (/var/lib/pycont/containers, or $PYCONT_ROOT/containers).
STATE_DIRS = ("/run/pycont/containers", "/var/lib/pycont/containers")
# How the helper shows in /proc/PID/cmdline: `python -I .../pycont/runtime/shim.py run DIR FD`
# today; `-m pycont.runtime.shim` or a process titled pycont-shim would be the same helper.
SHIM_MARKERS = (
    "pycont-slirp-",  # a container's slirp4netns: its API socket (pycont.net.slirp)
    "pycont/runtime/shim.py",
    "pycont/runtime/forkserver.py",
    "pycont.runtime.shim",
    "pycont-shim",
    "process=pycont-vm",  # a VM's qemu: -name pycont-vm-NAME,process=pycont-vm
)
VM_DIR = "/var/lib/pycont/vms"
NAME = "pycont"
NETDEV_PREFIXES = ("pc", "pycont")


def _unescape(field: str) -> str:
    """proc_pid_mountinfo(5) escapes space, tab, newline and backslash as octal (\\040)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:  # gone in between, or not readable: not ours to report
        return None


def _mounts() -> list[tuple[str, str, str, str]]:
    """(mount point, fstype, source, all options) for each line of /proc/self/mountinfo."""
    mounts = []
    for line in (_read(MOUNTINFO) or "").splitlines():
        # 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        root, point, opts = fields[3], fields[4], fields[5]
        fstype, source = fields[sep + 1], fields[sep + 2]
        super_opts = fields[sep + 3] if len(fields) > sep + 3 else ""
        all_opts = f"{opts},{super_opts}" if root == "/" else f"{opts},{super_opts},root={root}"
        mounts.append((_unescape(point), fstype, _unescape(source), _unescape(all_opts)))
    return mounts


def mount_leaks() -> list[str]:
    leaks = []
    for point, fstype, source, opts in _mounts():
        if NAME in point or NAME in source or NAME in opts:
            leaks.append(f"mount: {point} ({fstype}, source {source}, options {opts})")
    return leaks


def cgroup_leaks() -> list[str]:
    """Folders named *pycont* in every cgroup hierarchy (v1 controllers and v2), 4 levels deep."""
    roots = [p for p, fstype, _, _ in _mounts() if fstype in ("cgroup", "cgroup2")]
    if not roots and os.path.isdir(CGROUP_ROOT):
        roots = [CGROUP_ROOT]
    leaks = []
    seen: set[tuple[int, int]] = set()  # v1 hierarchies mounted twice (cpu,cpuacct) count once
    for top in sorted(roots):
        for dirpath, dirnames, _ in os.walk(top):
            try:
                st = os.stat(dirpath)
            except OSError:
                dirnames.clear()
                continue
            if (st.st_dev, st.st_ino) in seen:
                dirnames.clear()
                continue
            seen.add((st.st_dev, st.st_ino))
            if dirpath == top:
                depth = 0
            else:
                depth = os.path.relpath(dirpath, top).count(os.sep) + 1
                if NAME in os.path.basename(dirpath):
                    leaks.append(f"cgroup: {dirpath}")
            if depth >= CGROUP_MAX_DEPTH:
                dirnames.clear()
            dirnames.sort()
    return leaks


def netdev_leaks() -> list[str]:
    try:
        names = sorted(os.listdir(NET_CLASS))
    except OSError:
        return []
    return [f"network device: {n}" for n in names if n.startswith(NETDEV_PREFIXES)]


def netns_leaks() -> list[str]:
    try:
        names = sorted(os.listdir(NETNS_DIR))
    except OSError:
        return []
    return [f"netns: {os.path.join(NETNS_DIR, n)}" for n in names if NAME in n]


def _ancestors() -> set[int]:
    """This process and its parents: the shell or pytest that runs us may carry the name."""
    pids = set()
    pid = os.getpid()
    while pid > 0 and pid not in pids:
        pids.add(pid)
        stat = _read(f"/proc/{pid}/stat")
        if stat is None:
            break
        # "pid (comm) state ppid ...": comm may hold spaces and ")", so split at the last ")"
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def process_leaks() -> list[str]:
    """Processes of the pycont helper (the shim) and processes still inside a pycont cgroup."""
    skip = _ancestors()
    leaks = []
    for entry in sorted(os.listdir("/proc"), key=lambda e: (len(e), e)):
        if not entry.isdigit() or int(entry) in skip:
            continue
        raw = _read(f"/proc/{entry}/cmdline")
        if raw is None:
            continue
        cmdline = raw.replace("\0", " ").strip()
        cgroups = _read(f"/proc/{entry}/cgroup") or ""
        in_cgroup = sorted({ln.split(":", 2)[2] for ln in cgroups.splitlines() if NAME in ln})
        comm = (_read(f"/proc/{entry}/comm") or "").strip()
        if comm == "pycont-proxy":  # a published port's proxy (pycont.net.proxy)
            leaks.append(f"process: {entry} [pycont-proxy] {cmdline}")
        elif any(marker in cmdline for marker in SHIM_MARKERS):
            leaks.append(f"process: {entry} {cmdline}")
        elif in_cgroup:
            comm = (_read(f"/proc/{entry}/comm") or "?").strip()
            leaks.append(f"process: {entry} {cmdline or '[' + comm + ']'} (cgroup {in_cgroup[0]})")
    return leaks


def _session_roots(roots: list[str]) -> list[str]:
    """The course's chapter sessions under these pycont roots (pycont.course.session): each
    is a pycont root of its own, <root>/sessions/chNN-<tag>."""
    found = []
    for root in roots:
        with contextlib.suppress(OSError):
            top = os.path.join(root, "sessions")
            found += [os.path.join(top, n) for n in sorted(os.listdir(top))]
    return found


def state_leaks() -> list[str]:
    dirs = list(STATE_DIRS)
    env_root = os.environ.get("PYCONT_ROOT")
    if env_root:
        dirs.append(os.path.join(os.path.abspath(env_root), "containers"))
    roots = ["/var/lib/pycont", *([os.path.abspath(env_root)] if env_root else [])]
    sessions = _session_roots(list(dict.fromkeys(roots)))
    dirs += [os.path.join(s, "containers") for s in sessions]
    leaks: list[str] = []
    for d in dict.fromkeys(dirs):
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        leaks.extend(f"state: {os.path.join(d, n)}" for n in names)
    # Networks: a file per network (its bridge is found by netdev_leaks)
    net_roots = [os.path.join(r, "networks") for r in (*roots, *sessions)]
    for d in dict.fromkeys(net_roots):
        with contextlib.suppress(OSError):
            leaks.extend(
                f"network: {os.path.join(d, n)}"
                for n in sorted(os.listdir(d))
                if n.endswith(".json")
            )
    # VMs: a folder per VM (its console, initrd and agent socket) and a link per name
    vm_roots = [VM_DIR, *([os.path.join(os.path.abspath(env_root), "vms")] if env_root else [])]
    vm_roots += [os.path.join(s, "vms") for s in sessions]
    for d in dict.fromkeys(vm_roots):
        for sub in ("", "names"):
            try:
                names = sorted(os.listdir(os.path.join(d, sub)))
            except OSError:
                continue
            leaks.extend(
                f"VM state: {os.path.join(d, sub, n)}" for n in names if sub or n != "names"
            )
    return leaks


def find_leaks() -> list[str]:
    """Every pycont kernel object still on this machine, one line each; [] when clean."""
    return [
        *mount_leaks(),
        *cgroup_leaks(),
        *netdev_leaks(),
        *netns_leaks(),
        *process_leaks(),
        *state_leaks(),
    ]


def main() -> int:
    leaks = find_leaks()
    if not leaks:
        print("leak check: nothing left behind")
        return 0
    print(f"leak check: {len(leaks)} pycont object(s) left behind:")
    for leak in leaks:
        print(f"  {leak}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
