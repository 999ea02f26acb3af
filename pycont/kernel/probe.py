"""What this machine allows: root, user namespaces, cgroups, overlay, seccomp, KVM.

A container runtime can only do what the kernel and its privileges allow. The probe asks: it reads
/proc and /sys, and tries the real syscalls (unshare(2), mount(2)) in a throwaway child interpreter.

Each question gets an :class:`Answer` with a reason a learner can read. The calling process is never
forked and never unshared: it may be a multi-threaded Jupyter kernel. The namespace experiments run
in ``python -I -c ...``, a fresh single-threaded interpreter, which may fork freely.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycont.errors import KernelError
from pycont.kernel._base import CLONE_NEWNS, CLONE_NEWUSER, MNT_DETACH, MS_PRIVATE, MS_REC, Kernel
from pycont.kernel.linux import LinuxKernel
from pycont.kernel.mounts import (
    Answer,
    CgroupLayout,
    _read_text,
    cgroup_layout,
    own_cgroup_dir,
    parse_mountinfo,
)

__all__ = [
    "MODE_SUMMARY",
    "Answer",
    "CgroupLayout",
    "Probe",
    "cgroup_layout",
    "in_initial_userns",
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
        return MODE_SUMMARY.get(self.mode, self.mode)

    def answers(self) -> list[tuple[str, Answer]]:
        """(label, answer) pairs in display order."""
        return [(label, getattr(self, name)) for name, label in _LABELS]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        return [f"{'✔' if a.ok else '✘'} {label}: {a.reason}" for label, a in self.answers()]

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(label)}</td><td>{'✔' if a.ok else '✘'}</td>"
            f"<td style='text-align:left'>{html.escape(a.reason)}</td></tr>"
            for label, a in self.answers()
        )
        caption = html.escape(f"mode {self.mode_summary} (kernel {self.kernel})")
        return (
            f"<table><caption>{caption}</caption>"
            "<thead><tr><th>check</th><th>answer</th><th>reason</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )

    def __str__(self) -> str:
        return "\n".join(self.lines())


# ---- parsing: pure functions over text, so the unit tests can feed fake /proc files ----------


def status_fields(text: str) -> dict[str, str]:
    """/proc/<pid>/status (proc(5)) as a dict of ``Name: value`` lines."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _kernel_at_least(release: str, want: tuple[int, int]) -> bool:
    nums = release.split("-")[0].split(".")
    try:
        return (int(nums[0]), int(nums[1])) >= want
    except (IndexError, ValueError):
        return False


# capabilities(7): the ones a container runtime leans on, by bit number.
_NOTABLE_CAPS = {
    0: "CAP_CHOWN",
    1: "CAP_DAC_OVERRIDE",
    5: "CAP_KILL",
    6: "CAP_SETGID",
    7: "CAP_SETUID",
    12: "CAP_NET_ADMIN",
    18: "CAP_SYS_CHROOT",
    21: "CAP_SYS_ADMIN",
    24: "CAP_SYS_RESOURCE",
    27: "CAP_MKNOD",
}
_CAP_SYS_ADMIN = 21


def in_initial_userns(uid_map_text: str) -> bool:
    """user_namespaces(7): the initial namespace maps every uid to itself: ``0 0 4294967295``."""
    return uid_map_text.split() in (["0", "0", "4294967295"], [])


def root_answer(euid: int, status: dict[str, str], uid_map_text: str = "") -> Answer:
    if euid != 0:
        return Answer(False, f"euid {euid}: not root")
    if not in_initial_userns(uid_map_text):
        mapping = " ".join(uid_map_text.split())
        return Answer(
            False,
            f"euid 0 inside a user namespace (uid_map {mapping}): root over its own namespaces "
            "only, an unprivileged user on the host",
        )
    cap_eff = int(status.get("CapEff", "0"), 16)
    missing = [name for bit, name in _NOTABLE_CAPS.items() if not cap_eff >> bit & 1]
    have_admin = bool(cap_eff >> _CAP_SYS_ADMIN & 1)
    reason = "euid 0 with CAP_SYS_ADMIN" if have_admin else "euid 0 but without CAP_SYS_ADMIN"
    if missing:
        reason += f"; missing {', '.join(missing)} (capabilities(7))"
    return Answer(have_admin, reason, f"CapEff {status.get('CapEff', '?')}")


def seccomp_answer(status: dict[str, str], actions: str = "") -> Answer:
    mode = status.get("Seccomp")
    if mode is None:
        return Answer(False, "no Seccomp line in /proc/self/status: kernel without CONFIG_SECCOMP")
    name = {"0": "disabled", "1": "strict", "2": "filter"}.get(mode, "unknown")
    reason = f"supported; this process: mode {mode} ({name})"
    filters = status.get("Seccomp_filters", "0")
    if filters != "0":
        reason += f", {filters} filter(s)"
    return Answer(True, reason, f"actions: {actions}" if actions else "")


def no_new_privs_answer(status: dict[str, str], release: str) -> Answer:
    # prctl(2): PR_SET_NO_NEW_PRIVS exists since Linux 3.5; the status line since 4.10.
    value = status.get("NoNewPrivs", "unknown")
    if not _kernel_at_least(release, (3, 5)):
        return Answer(False, f"kernel {release} < 3.5 has no PR_SET_NO_NEW_PRIVS")
    return Answer(True, f"prctl(PR_SET_NO_NEW_PRIVS) available; this process: NoNewPrivs {value}")


def kvm_answer(version: int | OSError, pvm: bool) -> Answer:
    if isinstance(version, OSError):
        if version.errno == errno.ENOENT:
            return Answer(False, "no /dev/kvm: a VM runs under qemu TCG (emulation)")
        name = errno.errorcode.get(version.errno or 0, "?")
        hint = " (not in the kvm group?)" if version.errno == errno.EACCES else ""
        return Answer(False, f"open /dev/kvm: {version.strerror} [{name}]{hint}")
    reason = (
        f"/dev/kvm opens (KVM_GET_API_VERSION = {version}); "
        "whether a guest boots is decided by a boot test"
    )
    if pvm:
        reason += "; kvm_pvm is loaded: a nested paravirtual hypervisor, a stock kernel won't boot"
    return Answer(version == 12, reason)  # api.rst: 12 is the only stable KVM API version


def user_namespaces_answer(
    euid: int,
    sysctls: dict[str, str],
    tried: dict[str, Any],
    tried_unprivileged: dict[str, Any] | None,
) -> Answer:
    """``tried`` is the child's result of unshare(CLONE_NEWUSER): the authoritative answer."""
    detail = "; ".join(f"{k} = {v}" for k, v in sysctls.items())
    ok = bool(tried.get("ok"))
    reason = "unshare(CLONE_NEWUSER) works" if ok else str(tried.get("reason"))
    if not ok and sysctls.get("user.max_user_namespaces") == "0":
        reason += " (user.max_user_namespaces = 0)"
    if euid == 0 and tried_unprivileged is not None:
        uid = tried_unprivileged.get("uid")
        if tried_unprivileged.get("ok"):
            too = " too" if ok else ""
            reason += f"; an unprivileged user can{too} (tried as uid {uid}; {detail})"
        else:
            reason += (
                f"; an unprivileged user cannot: {tried_unprivileged.get('reason')} "
                f"(tried as uid {uid}; {detail})"
            )
    elif euid == 0 and sysctls.get("user.max_user_namespaces") not in (None, "", "0"):
        reason += f"; for unprivileged users: {detail}"
    return Answer(ok, reason, detail)


# ---- the child interpreter: namespaces are tried here, never in the caller ---------------------

_IN_CHILD = False
_CHILD_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from pycont.kernel.probe import _child_main; _child_main(sys.argv[2])"
)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


def _in_fork(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``fn`` in a forked copy of the (single-threaded) probe child; return its dict."""
    assert _IN_CHILD, "fork only in the probe's own child interpreter"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            answer = fn(*args)
        except KernelError as err:
            answer = {"ok": False, "reason": str(err)}
        except BaseException as err:
            answer = {"ok": False, "reason": f"{type(err).__name__}: {err}"}
        try:
            os.write(w, json.dumps(answer).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        return {"ok": False, "reason": f"probe process died (wait status {status})"}
    result: dict[str, Any] = json.loads(data)
    return result


def _try_userns(as_uid: int | None, kernel: Kernel | None = None) -> dict[str, Any]:
    k = kernel or LinuxKernel()
    if as_uid is not None:  # root asks for an unprivileged user: become one first
        try:
            os.setgroups([])
            os.setgid(as_uid)
            os.setuid(as_uid)
        except OSError as err:
            return {"ok": False, "uid": as_uid, "reason": f"setuid({as_uid}): {err.strerror}"}
    k.unshare(CLONE_NEWUSER)
    return {"ok": True, "uid": as_uid}


def _try_overlay(
    base: str,
    in_userns: bool,
    kernel: Kernel | None = None,
    write: Callable[[str, str], None] = _write_text,
) -> dict[str, Any]:
    """Mount an overlay in a new mount namespace, write through it, look in upperdir."""
    k = kernel or LinuxKernel()
    uid, gid = os.geteuid(), os.getegid()
    how = "a private mount namespace"
    if in_userns:
        k.unshare(CLONE_NEWUSER | CLONE_NEWNS)
        # user_namespaces(7): without CAP_SETGID in the parent namespace, setgroups(2) must be
        # denied before gid_map may be written; each map may hold only our own id.
        write("/proc/self/setgroups", "deny")
        write("/proc/self/uid_map", f"0 {uid} 1")
        write("/proc/self/gid_map", f"0 {gid} 1")
        how = f"unshare(CLONE_NEWUSER|CLONE_NEWNS) with uid {uid} mapped to 0"
    else:
        k.unshare(CLONE_NEWNS)
    # mount_namespaces(7): make every mount private so nothing propagates back to the host.
    k.mount("none", "/", "", MS_REC | MS_PRIVATE)
    names = ("lower", "upper", "work", "merged")
    lower, upper, work, merged = (os.path.join(base, d) for d in names)
    for d in (lower, upper, work, merged):
        os.makedirs(d)
    write(os.path.join(lower, "from-lower"), "lower\n")
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if in_userns:
        # overlayfs.rst: "userxattr" keeps overlay's metadata in user.overlay.* xattrs, which
        # an unprivileged mounter may write (trusted.* needs CAP_SYS_ADMIN); Linux >= 5.11.
        opts += ",userxattr"
    k.mount("pycont-probe", merged, "overlay", 0, opts)
    try:
        write(os.path.join(merged, "from-merged"), "merged\n")
        landed = os.path.exists(os.path.join(upper, "from-merged"))
        sees_lower = os.path.exists(os.path.join(merged, "from-lower"))
    finally:
        k.umount2(merged, MNT_DETACH)
    shutil.rmtree(base, ignore_errors=True)
    if not (landed and sees_lower):
        return {"ok": False, "reason": f"mounted in {how}, but a write did not land in upperdir"}
    extra = " with userxattr" if in_userns else ""
    return {"ok": True, "reason": f"mounted{extra} in {how}; a write landed in upperdir"}


def _child_main(plan_json: str) -> None:
    """Entry point of ``python -I -c _CHILD_CODE``: one JSON line of results on stdout."""
    global _IN_CHILD
    _IN_CHILD = True
    plan = json.loads(plan_json)
    out: dict[str, Any] = {"userns": _in_fork(_try_userns, None)}
    if plan.get("as_uid") is not None:
        out["userns_unprivileged"] = _in_fork(_try_userns, plan["as_uid"])
        out["userns_unprivileged"].setdefault("uid", plan["as_uid"])
    if plan.get("overlay"):
        out["overlay"] = _in_fork(_try_overlay, os.path.join(plan["tmp"], "root"), False)
    out["overlay_userns"] = _in_fork(_try_overlay, os.path.join(plan["tmp"], "userns"), True)
    print(json.dumps(out), flush=True)


def _run_child(plan: dict[str, Any]) -> dict[str, Any]:
    parent = str(Path(__file__).resolve().parents[2])  # the directory that holds pycont/
    cmd = [sys.executable, "-I", "-c", _CHILD_CODE, parent, json.dumps(plan)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "probe child timed out after 20 s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"probe child failed (exit {done.returncode}): {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _remove_tree(top: str) -> None:
    # overlay leaves workdir/work with mode 000: open every directory up before removing.
    for dirpath, dirnames, _ in os.walk(top):
        for d in dirnames:
            path = os.path.join(dirpath, d)
            if not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.chmod(path, 0o700)
    shutil.rmtree(top, ignore_errors=True)


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
        child = _run_child(plan)
    finally:
        _remove_tree(tmp)
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
