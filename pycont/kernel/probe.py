"""What this machine allows: root, user namespaces, cgroups, overlay, seccomp, KVM.

A container runtime can only do what the kernel and its privileges allow. The probe asks: it reads
/proc and /sys, and tries the real syscalls (unshare(2), mount(2)) in a throwaway child interpreter.

Each question gets an :class:`Answer` with a reason a learner can read. The calling process is never
forked and never unshared: it may be a multi-threaded Jupyter kernel. The namespace experiments run
in ``python -I -c ...``, a fresh single-threaded interpreter, which may fork freely
(:mod:`pycont.kernel.probe_child`); the reasons are read from /proc's text by
:mod:`pycont.kernel.probe_answers`. Drawing a :class:`Probe` (HTML) is the notebook layer's job.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycont.fsutil import remove_tree
from pycont.kernel.mounts import (
    Answer,
    CgroupLayout,
    _read_text,
    cgroup_layout,
    own_cgroup_dir,
    parse_mountinfo,
)
from pycont.kernel.probe_answers import (
    in_initial_userns,
    kvm_answer,
    no_new_privs_answer,
    root_answer,
    seccomp_answer,
    status_fields,
    user_namespaces_answer,
)
from pycont.kernel.probe_child import run_child

__all__ = [
    "MODE_SUMMARY",
    "Answer",
    "CgroupLayout",
    "Probe",
    "cgroup_layout",
    "in_initial_userns",
    "lab_note",
    "kvm_answer",
    "no_new_privs_answer",
    "own_cgroup_dir",
    "parse_mountinfo",
    "probe",
    "root_answer",
    "seccomp_answer",
    "status_fields",
    "user_namespaces_answer",
]

MODE_SUMMARY = {
    "root": "root: every namespace, cgroup limits, overlay",
    "rootless": "rootless: namespaces through a user namespace, overlay with userxattr, "
    "no cgroup limits unless delegated",
    "unprivileged": "unprivileged: no user namespaces, no isolation",
}
# Set by pycont.vm.labkernel: in the lab VM (JSON: why, accelerator, kernel), or the reason the
# lab VM could not start the kernel (plain text). Read here so every summary says where it ran.
ENV_LAB = "PYCONT_LAB_VM"
ENV_LAB_FAILED = "PYCONT_LAB_FAILED"


def lab_note(env: Mapping[str, str] | None = None) -> str:
    """Where this kernel runs, when not simply on its host: '' on a host of its own."""
    env = os.environ if env is None else env
    raw = env.get(ENV_LAB)
    if raw:
        try:
            info = json.loads(raw)
            accel = str(info["accel"]).split(":")[0]
            return f"in pycont's lab VM ({info['kernel']}, {accel}) because {info['reason']}"
        except (ValueError, KeyError, TypeError):
            return "in pycont's lab VM"
    failed = env.get(ENV_LAB_FAILED)
    if failed:
        return f"pycont's lab VM could not start here ({failed})"
    return ""


# (field name, human label) of every Answer of a Probe, in the order they are shown.
_LABELS = (
    ("root", "root"),
    ("user_namespaces", "user namespaces"),
    ("cgroup", "cgroups"),
    ("cgroup_writable", "cgroup writable"),
    ("overlay", "overlay"),
    ("overlay_in_userns", "overlay in a user namespace"),
    ("seccomp", "seccomp"),
    ("no_new_privs", "no_new_privs"),
    ("kvm", "KVM"),
)


@dataclass(frozen=True)
class Probe:
    """Everything the probe found; ``mode`` sums up what pycont can do here."""

    root: Answer
    user_namespaces: Answer
    cgroup_mode: str  # "v1", "hybrid", "v2" or "none"
    cgroup: Answer
    cgroup_controllers: dict[str, str]  # controller -> "v1" or "v2"
    cgroup_writable: Answer
    overlay: Answer
    overlay_in_userns: Answer
    seccomp: Answer
    no_new_privs: Answer
    kvm: Answer
    kernel: str
    mode: str  # "root", "rootless" or "unprivileged"
    elapsed: float = 0.0  # seconds the probe took

    @property
    def mode_summary(self) -> str:
        summary = MODE_SUMMARY.get(self.mode, self.mode)
        note = lab_note()
        return f"{summary}; {note}" if note else summary

    def answers(self) -> list[tuple[str, Answer]]:
        """(label, answer) pairs in display order."""
        return [(label, getattr(self, name)) for name, label in _LABELS]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        return [f"{'✔' if a.ok else '✘'} {label}: {a.reason}" for label, a in self.answers()]

    def __str__(self) -> str:
        return "\n".join(self.lines())


# ---- the probes that run in this process (reads, one mkdir, one ioctl) ------------------------


def _read_or(path: str, default: str = "") -> str:
    try:
        return _read_text(path)
    except OSError:
        return default


def _cgroup_writable(layout: CgroupLayout, euid: int) -> Answer:
    # The memory controller is the one limits need most; in v2 every controller is in one tree.
    controller = "memory" if "memory" in layout.controllers else next(iter(layout.v1), "")
    target = own_cgroup_dir(layout, _read_or("/proc/self/cgroup"), controller)
    if target is None:
        return Answer(False, "no cgroup hierarchy to write to")
    here = ""
    if layout.controllers.get(controller) != "v1":
        here = "controllers here: " + (_read_or(f"{target}/cgroup.controllers").strip() or "none")
    if euid != 0:
        # cgroups(7), "Cgroups v2 delegation": a user may manage a subtree it owns.
        try:
            owner = os.stat(target).st_uid
        except OSError as err:
            return Answer(False, f"stat {target}: {err.strerror}")
        if owner != euid:
            return Answer(False, f"{target} belongs to uid {owner}: not delegated to uid {euid}")
    child = os.path.join(target, f"pycont-probe-{os.getpid()}")
    try:
        os.mkdir(child)
        os.rmdir(child)
    except OSError as err:
        name = errno.errorcode.get(err.errno or 0, "?")
        return Answer(False, f"mkdir {child}: {err.strerror} [{name}]", here)
    return Answer(True, f"created and removed {child}", here)


def _kvm() -> Answer:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        return kvm_answer(err, False)
    try:
        version: int | OSError = fcntl.ioctl(fd, 0xAE00)  # KVM_GET_API_VERSION = _IO(0xAE, 0)
    except OSError as err:
        version = err
    finally:
        os.close(fd)
    return kvm_answer(version, os.path.isdir("/sys/module/kvm_pvm"))


def _probe() -> Probe:
    start = time.perf_counter()
    euid = os.geteuid()
    release = os.uname().release
    status = status_fields(_read_or("/proc/self/status"))
    root = root_answer(euid, status, _read_or("/proc/self/uid_map"))
    layout = cgroup_layout(_read_or("/proc/self/mountinfo"))
    sysctls = {"user.max_user_namespaces": _read_or("/proc/sys/user/max_user_namespaces").strip()}
    for name in ("unprivileged_userns_clone", "apparmor_restrict_unprivileged_userns"):
        value = _read_or(f"/proc/sys/kernel/{name}").strip()
        if value:  # Debian's older kernels and Ubuntu's AppArmor add these knobs
            sysctls[f"kernel.{name}"] = value

    tmp = tempfile.mkdtemp(prefix="pycont-probe-")
    try:
        # uid 65534 (nobody) stands for "an unprivileged user" when root asks on their behalf.
        plan = {"tmp": tmp, "overlay": euid == 0, "as_uid": 65534 if root.ok else None}
        child = run_child(plan)
    finally:
        remove_tree(tmp)  # overlay leaves workdir/work mode 000: it copes
    failed = {"ok": False, "reason": child.get("error", "not tried")}

    userns = user_namespaces_answer(
        euid, sysctls, child.get("userns", failed), child.get("userns_unprivileged")
    )
    in_fs = "overlay" in _read_or("/proc/filesystems").split()
    fs_note = "" if in_fs else "overlay not in /proc/filesystems before the mount"
    if euid == 0:
        res = child.get("overlay", failed)
        overlay = Answer(bool(res.get("ok")), str(res.get("reason")), fs_note)
    else:
        overlay = Answer(False, "not root: mount(2) needs CAP_SYS_ADMIN; see the user namespace")
    res = child.get("overlay_userns", failed)
    overlay_userns = Answer(bool(res.get("ok")), str(res.get("reason")), fs_note)

    # Root inside a user namespace already holds every capability over its namespaces: rootless.
    in_userns = euid == 0 and not in_initial_userns(_read_or("/proc/self/uid_map"))
    mode = "root" if root.ok else "rootless" if userns.ok or in_userns else "unprivileged"
    return Probe(
        root=root,
        user_namespaces=userns,
        cgroup_mode=layout.mode,
        cgroup=Answer(layout.mode != "none", layout.reason),
        cgroup_controllers=dict(sorted(layout.controllers.items())),
        cgroup_writable=_cgroup_writable(layout, euid),
        overlay=overlay,
        overlay_in_userns=overlay_userns,
        seccomp=seccomp_answer(status, _read_or("/proc/sys/kernel/seccomp/actions_avail").strip()),
        no_new_privs=no_new_privs_answer(status, release),
        kvm=_kvm(),
        kernel=release,
        mode=mode,
        elapsed=time.perf_counter() - start,
    )


_cache: Probe | None = None
_lock = threading.Lock()


def probe(refresh: bool = False) -> Probe:
    """What this machine allows; probed once per process, again with ``refresh=True``."""
    global _cache
    with _lock:
        if _cache is None or refresh:
            _cache = _probe()
        return _cache
