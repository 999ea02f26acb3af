"""Seccomp filters on the real kernel: each test loads a filter into a forked child (a filter
cannot be removed, so never into the test process) and reports back what the kernel answered.

Every call tried is harmless even if the filter let it through: nonexistent paths, invalid
flags or magic numbers, and each one runs in its own grandchild, in its own session."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pycont.security import seccomp
from pycont.security.capabilities import DOCKER_DEFAULT
from tests.helpers import requires

# cgroup_v2: the v2 VM (tests/vm/run_v2.py) runs these too, on its own kernel.
pytestmark = [pytest.mark.cgroup_v2, requires("root")]

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long  # variadic: the arguments are typed one by one below

NOWHERE = b"/nonexistent-pycont-seccomp"
CLONE_NEWUSER, CLONE_NEWNS, CLONE_FS = 0x10000000, 0x00020000, 0x00000200
ADDR_NO_RANDOMIZE = 0x0040000
AF_VSOCK = 40
O_NONBLOCK = os.O_NONBLOCK


def _arg(value: Any) -> Any:
    return ctypes.c_long(value) if isinstance(value, int) else value


# name -> arguments that make the call fail harmlessly (or do nothing) if it is not blocked.
HARMLESS: dict[str, Callable[[], tuple[Any, ...]]] = {
    "mount": lambda: (b"none", NOWHERE, b"tmpfs", 0, None),
    "umount2": lambda: (NOWHERE, 0),
    "pivot_root": lambda: (NOWHERE, NOWHERE),
    "unshare": lambda: (CLONE_NEWUSER,),  # in a throwaway grandchild
    "setns": lambda: (-1, 0),
    "sethostname": lambda: (b"pc", 100000),  # longer than __NEW_UTS_LEN: EINVAL
    "setdomainname": lambda: (b"pc", 100000),
    "reboot": lambda: (0x0BADC0DE, 0, 0, None),  # wrong magic: EINVAL
    "swapon": lambda: (NOWHERE, 0),
    "swapoff": lambda: (NOWHERE,),
    "kexec_load": lambda: (0, 0, None, 0x8000),  # an undefined flag: EINVAL before anything
    "init_module": lambda: (None, 0, b""),
    "finit_module": lambda: (-1, b"", 0),
    "delete_module": lambda: (b"pycont_no_such_module", O_NONBLOCK),
    "acct": lambda: (NOWHERE,),
    "settimeofday": lambda: (None, (ctypes.c_int * 2)(99999, 0)),  # tz out of range: EINVAL
    "clock_settime": lambda: (1, (ctypes.c_long * 2)(0, 0)),  # CLOCK_MONOTONIC: EINVAL
    "keyctl": lambda: (0x7FFF, 0, 0, 0, 0),  # no such operation
    "add_key": lambda: (b"pycont_no_such_type", b"pc", None, 0, -100),
    "request_key": lambda: (b"pycont_no_such_type", b"pc", None, 0),
    "bpf": lambda: (0x7FFF, None, 0),
    "perf_event_open": lambda: (None, 0, -1, -1, 0),
    "open_by_handle_at": lambda: (-1, None, 0),
    "userfaultfd": lambda: (0x7FFF0000,),  # invalid flags
    "quotactl": lambda: (0x7FFFFF, None, 0, None),
    "lookup_dcookie": lambda: (0, None, 0),
    "syslog": lambda: (0x7FFF, None, 0),
    "vhangup": lambda: (),  # no controlling terminal after setsid: nothing to hang up
    "fsopen": lambda: (b"pycont_no_such_fs", 0),
    "open_tree": lambda: (-1, NOWHERE, 0),
    "kcmp": lambda: (os.getpid(), os.getpid(), 0x7FFF, 0, 0),
    "set_mempolicy": lambda: (0x7FFF, None, 0),
}


def syscall_errno(name: str, *args: Any) -> int:
    """Make the call in a grandchild (its own session): 0 if it succeeded, else its errno."""
    import pyseccomp

    nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    assert nr >= 0, f"{name} is not a syscall on this machine"
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            ctypes.set_errno(0)
            rc = _libc.syscall(ctypes.c_long(nr), *(_arg(a) for a in args))
            os._exit(0 if rc != -1 else min(ctypes.get_errno(), 254))
        finally:
            os._exit(255)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def native(name: str) -> bool:
    import pyseccomp

    return int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)) >= 0


def in_child(fn: Callable[[], Any]) -> Any:
    """Run fn in a forked child and return its JSON-able result (or raise its error here)."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rd)
            try:
                payload = {"result": fn()}
            except BaseException as err:  # noqa: BLE001 - reported to the parent
                payload = {"error": f"{type(err).__name__}: {err}"}
            data = json.dumps(payload).encode()
            while data:
                data = data[os.write(wr, data) :]
        finally:
            os._exit(0)
    os.close(wr)
    with os.fdopen(rd, "rb") as f:
        raw = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    payload = json.loads(raw)
    assert "error" not in payload, payload.get("error")
    return payload["result"]


def denied_examples() -> list[str]:
    return [n for n in seccomp.DOCKER_DENIED_EXAMPLES if native(n)]


def test_docker_default_denies_at_least_20_syscalls_with_eperm() -> None:
    names = denied_examples()
    assert len(names) >= 20
    assert set(names) <= set(HARMLESS)

    def attempt() -> dict[str, Any]:
        seccomp.install(seccomp.default_profile(), DOCKER_DEFAULT)
        return {"mode": seccomp.mode(), **{n: syscall_errno(n, *HARMLESS[n]()) for n in names}}

    got = in_child(attempt)
    assert got.pop("mode") == 2
    assert got == {n: errno.EPERM for n in names}


def test_the_filter_not_the_kernel_says_no() -> None:
    """The same calls with the profile's errno changed: each fails with that errno, so the
    EPERM above came from the filter, not from a check of the kernel's own."""
    names = denied_examples()
    profile = seccomp.default_profile()
    profile["defaultErrnoRet"] = errno.ENOTNAM  # no syscall above ever returns it

    def attempt() -> dict[str, int]:
        seccomp.install(profile, DOCKER_DEFAULT)
        return {n: syscall_errno(n, *HARMLESS[n]()) for n in names}

    assert in_child(attempt) == {n: errno.ENOTNAM for n in names}
    # Without a filter none of them fails with it.
    unfiltered = in_child(lambda: {n: syscall_errno(n, *HARMLESS[n]()) for n in names})
    assert errno.ENOTNAM not in unfiltered.values()


def test_argument_filters() -> None:
    def attempt() -> dict[str, int]:
        seccomp.install(seccomp.default_profile(), DOCKER_DEFAULT)
        return {
            # CLONE_NEWNS|CLONE_FS is invalid anyway (EINVAL): the filter answers first.
            "clone_newns": syscall_errno("clone", CLONE_NEWNS | CLONE_FS, 0, 0, 0, 0),
            "clone3": syscall_errno("clone3", None, 0),
            "personality_no_aslr": syscall_errno("personality", ADDR_NO_RANDOMIZE),
            "personality_query": syscall_errno("personality", 0xFFFFFFFF),
            "socket_vsock": syscall_errno("socket", AF_VSOCK, 1, 0),
            "socket_unix": syscall_errno("socket", 1, 1, 0),
        }

    assert in_child(attempt) == {
        "clone_newns": errno.EPERM,
        "clone3": errno.ENOSYS,  # the rule's errnoRet: libc then falls back to clone(2)
        "personality_no_aslr": errno.EPERM,
        "personality_query": 0,
        "socket_vsock": errno.EPERM,
        "socket_unix": 0,
    }


def test_allowed_syscalls_still_work(tmp_path: Path) -> None:
    def attempt() -> dict[str, Any]:
        before = os.getpid()
        seccomp.install(seccomp.default_profile(), DOCKER_DEFAULT)
        os.mkdir(tmp_path / "made")
        pid = os.fork()
        if pid == 0:
            try:
                os.execv("/bin/true", ["true"])
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("Seccomp:"))
        return {
            "pid": os.getpid() == before,
            "true": os.waitstatus_to_exitcode(status),
            "status": line.split(),
        }

    assert in_child(attempt) == {"pid": True, "true": 0, "status": ["Seccomp:", "2"]}
    assert (tmp_path / "made").is_dir()


def _deny_mkdir(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(doc))
    return path


def test_oci_profile_denying_mkdir(tmp_path: Path) -> None:
    machine = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
    arch = machine.get(os.uname().machine)
    doc = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": [arch] if arch else [],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    profile = seccomp.load_profile(str(_deny_mkdir(tmp_path, doc)))

    def attempt() -> dict[str, Any]:
        seccomp.install(profile, DOCKER_DEFAULT)
        try:
            os.mkdir(tmp_path / "denied")
            made = 0
        except OSError as err:
            made = err.errno or -1
        (tmp_path / "file").write_text("writes still work")
        return {"mkdir": made, "mode": seccomp.mode()}

    assert in_child(attempt) == {"mkdir": errno.EPERM, "mode": 2}
    assert not (tmp_path / "denied").exists()
    assert (tmp_path / "file").read_text() == "writes still work"


def test_docker_profile_rule_follows_the_capabilities(tmp_path: Path) -> None:
    doc = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["mkdir", "mkdirat"],
                "action": "SCMP_ACT_ERRNO",
                "excludes": {"caps": ["CAP_SYS_ADMIN"]},
            }
        ],
    }
    profile = seccomp.load_profile(str(_deny_mkdir(tmp_path, doc)))

    def attempt(caps: frozenset[str], sub: str) -> int:
        seccomp.install(profile, caps)
        try:
            os.mkdir(tmp_path / sub)
        except OSError as err:
            return err.errno or -1
        return 0

    assert in_child(lambda: attempt(DOCKER_DEFAULT, "a")) == errno.EPERM
    assert in_child(lambda: attempt(DOCKER_DEFAULT | {"CAP_SYS_ADMIN"}, "b")) == 0
    assert (tmp_path / "b").is_dir()


def test_unconfined_loads_nothing() -> None:
    def attempt() -> list[int]:
        seccomp.install({}, DOCKER_DEFAULT)
        return [seccomp.mode(), syscall_errno("umount2", NOWHERE, 0)]

    assert in_child(attempt) == [0, errno.ENOENT]


def test_prepared_program_is_cached_and_loaded(pycont_root: str) -> None:
    program = seccomp.prepare(seccomp.default_profile(), DOCKER_DEFAULT)
    assert program and len(program) % 8 == 0
    cache = Path(pycont_root, "cache", "seccomp")
    assert [p.read_bytes() for p in cache.glob("*.bpf")].count(program) == 1

    def attempt() -> list[int]:
        seccomp.install(seccomp.default_profile(), DOCKER_DEFAULT)
        return [seccomp.mode(), syscall_errno("umount2", NOWHERE, 0)]

    assert in_child(attempt) == [2, errno.EPERM]


def test_install_needs_cap_sys_admin_or_no_new_privs() -> None:
    """seccomp(2): without CAP_SYS_ADMIN a process must set no_new_privs first; install()
    does not set it for the caller."""
    import pyseccomp  # noqa: F401 - loaded before the capabilities go

    def attempt() -> str:
        os.setresuid(65534, 65534, 65534)  # nobody: no capabilities left
        try:
            seccomp.install(seccomp.default_profile(), DOCKER_DEFAULT)
        except OSError as err:
            return errno.errorcode[err.errno or 0]
        return "loaded"

    assert in_child(attempt) == "EACCES"


def test_after_chroot_install_loads_only_a_prepared_program(tmp_path: Path) -> None:
    """The container's PID 1 calls install() after pivot_root: it must load the program
    prepare() compiled on the host side, and refuse to load the binding from the new root."""
    import pyseccomp

    profile = seccomp.default_profile()
    seccomp.prepare(profile, DOCKER_DEFAULT)
    unprepared = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["pycont_unprepared"], "action": "SCMP_ACT_LOG"}],
    }
    umount2 = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "umount2")
    empty = tmp_path / "root"
    empty.mkdir()

    def attempt() -> list[str]:
        sys.modules.pop("pyseccomp", None)  # as a helper that never imported the binding
        os.chroot(empty)  # nothing in there: no libraries, no Python modules, no /proc
        os.chdir("/")
        try:
            seccomp.install(unprepared, DOCKER_DEFAULT)
            refused = "loaded"
        except OSError as err:
            refused = errno.errorcode[err.errno or 0]
        seccomp.install(profile, DOCKER_DEFAULT)
        ctypes.set_errno(0)
        _libc.syscall(ctypes.c_long(umount2), NOWHERE, ctypes.c_long(0))
        return [refused, errno.errorcode[ctypes.get_errno()]]

    assert in_child(attempt) == ["ELIBACC", "EPERM"]
