"""The probe's experiments: unshare(2) and an overlay mount(2), tried in a throwaway child.

The caller may be a multi-threaded Jupyter kernel, which must never fork or unshare itself, so
:func:`run_child` starts ``python -I -c ...``, a fresh single-threaded interpreter; that child
forks once per experiment (each may leave its namespaces in a state only exit undoes) and prints
one JSON line of results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pycont.errors import KernelError
from pycont.kernel._base import CLONE_NEWNS, CLONE_NEWUSER, MNT_DETACH, MS_PRIVATE, MS_REC, Kernel
from pycont.kernel.linux import LinuxKernel

__all__ = ["run_child"]

_IN_CHILD = False
_CHILD_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from pycont.kernel.probe_child import _child_main; _child_main(sys.argv[2])"
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
    # Not pycont.overlay.mount_options: the seam imports nothing above it, and these paths are
    # our own mkdtemp's, with no ',' ':' or '\\' to escape.
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


def run_child(plan: dict[str, Any]) -> dict[str, Any]:
    """Run the experiments of ``plan`` in a fresh interpreter; their results, or ``error``."""
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
