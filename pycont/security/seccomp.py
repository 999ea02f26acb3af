"""Seccomp: a small BPF program the kernel runs at every system call of a process, which answers
allow, fail with an errno, or kill (seccomp(2)). Docker loads its default profile into each
container.

A profile lists syscalls and what happens to them; the rest get the default action (Docker's:
EPERM). Rules can depend on the container's capabilities, the machine's architecture, the kernel
version (resolved when the filter is built) and the syscall's arguments (checked by the kernel).
Once loaded, a filter stays for the life of the process and its children: nothing removes it.

Binding: pyseccomp (PyPI), ctypes over the system's libseccomp.so.2 with the official binding's
API, installs into any Python; Debian's python3-seccomp is compiled for /usr/bin/python3 only.

Timing (Docker's profile, x86_64: 1001 BPF instructions): importing the binding ~12-25 ms and
building the filter ~17 ms, so :func:`prepare` compiles once (seccomp_export_bpf) and keeps the
program in memory and in a cache folder (~1 ms to read); :func:`install` in the forked container
process then resolves, finds it and loads it with prctl(2) in ~2.5 ms.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from pycont import paths
from pycont.errors import KernelError, Unsupported
from pycont.kernel import Kernel, current
from pycont.security import _docker_profile as _docker
from pycont.security.seccomp_format import (
    _ACTIONS,
    _FLAGS,
    _KERNEL_VERSION,
    _OPS,
    check,
    load_profile,
)

__all__ = [
    "DOCKER_DENIED_EXAMPLES",
    "available",
    "default_profile",
    "install",
    "load_profile",
    "mode",
    "prepare",
    "resolve",
]

# uname(2)'s machine -> (Docker's arch name in includes/excludes, libseccomp's arch).
_MACHINES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "i686": ("x86", "SCMP_ARCH_X86"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "loongarch64": ("loongarch64", "SCMP_ARCH_LOONGARCH64"),
}
_NR_SCMP_ERROR = -1  # libseccomp's answer for a name it does not know

# Syscalls Docker's profile denies to a container with the default capabilities (the tests and
# the chapter try them). Each needs a capability the container lacks, or nothing should use it.
_DENIED = """
    mount umount2 pivot_root unshare setns sethostname setdomainname reboot swapon swapoff
    kexec_load init_module finit_module delete_module acct settimeofday clock_settime keyctl
    add_key request_key bpf perf_event_open open_by_handle_at userfaultfd quotactl
    lookup_dcookie syslog vhangup fsopen open_tree kcmp set_mempolicy
"""
DOCKER_DENIED_EXAMPLES: tuple[str, ...] = tuple(_DENIED.split())


def default_profile() -> dict[str, Any]:
    """Docker's default profile in Docker's JSON profile format (a fresh dict each call)."""
    rules: list[dict[str, Any]] = [{"names": list(_docker.ALWAYS), "action": "SCMP_ACT_ALLOW"}]
    for names, condition in _docker.ALLOWED_IF:
        kind, *values = condition.split()
        key = {"cap": "caps", "arch": "arches", "kernel": "minKernel"}[kind]
        includes = {key: values[0] if kind == "kernel" else values}
        rules.append({"names": names.split(), "action": "SCMP_ACT_ALLOW", "includes": includes})
    for op, family in _docker.SOCKET_FAMILY:
        rules.append(_allow_if_arg("socket", 0, op, family))
    for persona in _docker.PERSONAS:
        rules.append(_allow_if_arg("personality", 0, "SCMP_CMP_EQ", persona))
    no_admin = {"caps": ["CAP_SYS_ADMIN"]}
    for index in sorted(set(_docker.CLONE_FLAGS_ARG.values()) | {0}):
        rule = _allow_if_arg("clone", index, "SCMP_CMP_MASKED_EQ", _docker.CLONE_NAMESPACE_FLAGS)
        here = sorted(a for a, i in _docker.CLONE_FLAGS_ARG.items() if i == index)
        elsewhere = sorted(a for a, i in _docker.CLONE_FLAGS_ARG.items() if i != index)
        rule["excludes"] = {**no_admin, "arches": elsewhere} if index == 0 else dict(no_admin)
        if index != 0:
            rule["includes"] = {"arches": here}
        rules.append(rule)
    rules.append(
        {
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": _docker.CLONE3_ERRNO,
            "excludes": dict(no_admin),
        }
    )
    return {
        "defaultAction": _docker.DEFAULT_ACTION,
        "defaultErrnoRet": _docker.DEFAULT_ERRNO,
        "archMap": [
            {"architecture": arch, "subArchitectures": list(subs)}
            for arch, subs in _docker.ARCHES.items()
        ],
        "syscalls": rules,
    }


def _allow_if_arg(name: str, index: int, op: str, value: int) -> dict[str, Any]:
    arg = {"index": index, "value": value, "valueTwo": 0, "op": op}
    return {"names": [name], "action": "SCMP_ACT_ALLOW", "args": [arg]}


def resolve(
    profile: dict[str, Any],
    caps: Iterable[str],
    machine: str | None = None,
    kernel: str | None = None,
) -> dict[str, Any] | None:
    """The profile for this container on this machine, in the OCI format (no includes or
    excludes left), or None for no filter at all (an empty profile: Docker's unconfined).

    Docker's rules: a rule applies if the machine's arch, every ``includes.caps``
    and the kernel version ``includes.minKernel`` match, and none of ``excludes`` does.
    ``machine`` and ``kernel`` default to uname(2)'s."""
    check(profile, "(in memory)")
    if "defaultAction" not in profile and not profile.get("syscalls"):
        return None
    uname = os.uname()
    machine = machine or uname.machine
    arch, scmp_arch = _MACHINES.get(machine, (machine, ""))
    running = _version(kernel or uname.release)
    have = frozenset(caps)
    arches: list[str] = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == scmp_arch:
            arches = [scmp_arch, *(entry.get("subArchitectures") or [])]
    calls: list[dict[str, Any]] = []
    for call in profile.get("syscalls") or []:
        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if not have.issuperset(inc.get("caps") or ()):
            continue
        if "minKernel" in inc and running < _version(inc["minKernel"]):
            continue
        if arch in (exc.get("arches") or ()) or have.intersection(exc.get("caps") or ()):
            continue
        if "minKernel" in exc and running >= _version(exc["minKernel"]):
            continue
        out = {"names": list(call.get("names") or [call["name"]]), "action": call["action"]}
        if "errnoRet" in call:
            out["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            out["args"] = [dict(a) for a in call["args"]]
        calls.append(out)
    resolved = {"defaultAction": profile["defaultAction"], "architectures": arches}
    if "defaultErrnoRet" in profile:
        resolved["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if profile.get("flags"):
        resolved["flags"] = list(profile["flags"])
    resolved["syscalls"] = calls
    return resolved


def _version(text: str) -> tuple[int, int]:
    m = _KERNEL_VERSION.match(text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _root() -> tuple[int, int]:
    st = os.stat("/")
    return st.st_dev, st.st_ino


_ROOT_AT_IMPORT = _root()

# Compiled programs of this process by digest of the resolved profile: prepare() fills it on
# the host side, a forked child (the container's PID 1) finds it there after pivot_root.
_programs: dict[str, bytes] = {}


def prepare(profile: dict[str, Any], caps: Iterable[str]) -> bytes | None:
    """Compile the filter for this container now, on the host side, and keep it for
    :func:`install`: call it before pivot_root(2) or setns(2), in the process the container's
    first process is forked from. It imports the binding and reads the cache folder from the
    host's filesystem (after pivot_root both would come from the image). Returns the BPF
    program (8-byte struct sock_filter instructions), None when unconfined."""
    rules = resolve(profile, caps)
    if rules is None:
        return None
    key = _digest(rules)
    if key in _programs:
        return _programs[key]
    path = os.path.join(paths.root(), "cache", "seccomp", f"{_disk_key(key)}.bpf")
    program = _read_cached(path)
    if program is None:
        program = _compile(rules)
        _store(path, program)
    _programs[key] = program
    return program


def install(profile: dict[str, Any], caps: Iterable[str], kernel: Kernel | None = None) -> None:
    """Load the filter into THIS process (single-threaded, just before exec). It needs
    CAP_SYS_ADMIN or no_new_privs (seccomp(2)); this function sets neither. Loads what
    :func:`prepare` compiled; without it, compiles here (never touching the cache folder)."""
    rules = resolve(profile, caps)
    if rules is None:
        return
    program = _programs.get(_digest(rules))
    if program is None:
        if "pyseccomp" not in sys.modules and _root() != _ROOT_AT_IMPORT:
            # After pivot_root(2), importing the binding and dlopen(3)ing libseccomp would run
            # the image's code with every capability, before the filter (runc loads nothing
            # from the container either).
            raise Unsupported(
                "load a seccomp filter",
                errno.ELIBACC,
                detail="the root changed since pycont started: call seccomp.prepare() before "
                "pivot_root, so that install() loads nothing from the container",
            )
        program = _compile(rules)
    (kernel or current()).load_seccomp(program, flags_of(profile))


def flags_of(profile: dict[str, Any]) -> int:
    """The profile's SECCOMP_FILTER_FLAG_* bits, for seccomp(2)."""
    flags = 0
    for flag in profile.get("flags") or ():
        flags |= _FLAGS[flag]
    return flags


def mode(pid: int | str = "self") -> int:
    """The ``Seccomp:`` line of /proc/<pid>/status: 0 none, 1 strict, 2 filter (proc(5))."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    return 0  # a kernel built without seccomp


def _digest(rules: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()


def _disk_key(key: str) -> str:
    # Another libseccomp may know other syscall names: its program is another program.
    lib = _libseccomp()
    lib.seccomp_version.restype = ctypes.POINTER(ctypes.c_uint * 3)
    version = ".".join(str(n) for n in lib.seccomp_version().contents)
    return hashlib.sha256(f"{key} libseccomp {version}".encode()).hexdigest()[:40]


def _libseccomp() -> ctypes.CDLL:
    try:
        return ctypes.CDLL("libseccomp.so.2")
    except OSError as err:
        raise Unsupported(
            "load a seccomp filter",
            errno.ENOPKG,
            detail="libseccomp.so.2 not found: install libseccomp2 (Debian/Ubuntu) "
            "or libseccomp (Fedora), or run with --security-opt seccomp=unconfined",
        ) from err


def available() -> tuple[bool, str]:
    """Whether Docker's profile can be built here (libseccomp and the binding load), and what
    was found or what is missing, in one line (``pycont doctor`` prints it)."""
    try:
        lib = _libseccomp()
        _binding()
    except Unsupported as err:
        return False, f"{err.detail}"
    lib.seccomp_version.restype = ctypes.POINTER(ctypes.c_uint * 3)
    version = ".".join(str(n) for n in lib.seccomp_version().contents)
    return True, f"libseccomp {version} with pyseccomp: containers get Docker's default profile"


def _site_packages() -> list[str]:
    """This interpreter's site-packages folders, found as site.py would: its venv's (a
    pyvenv.cfg beside the interpreter's folder: site.py, skipped by -S, is what reads it),
    then the base installation's."""
    import site

    venv = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = []
    if os.path.exists(os.path.join(venv, "pyvenv.cfg")):
        found.append(os.path.join(venv, "lib", version, "site-packages"))
    found.extend(site.getsitepackages())
    return [p for p in found if os.path.isdir(p)]


def _binding() -> Any:
    _libseccomp()  # the clear error first, before the binding's own
    try:
        try:
            import pyseccomp
        except ImportError:
            # pycont's helpers run as `python -I -S` (fast start, no site): their sys.path
            # lacks this interpreter's site-packages, where pip put the binding.
            sys.path.extend(p for p in _site_packages() if p not in sys.path)
            import pyseccomp
    except (ImportError, RuntimeError) as err:
        raise Unsupported(
            "load a seccomp filter",
            errno.ENOPKG,
            detail=f"the pyseccomp package does not load ({err}): pip install pyseccomp",
        ) from err
    return pyseccomp


def _action(name: str, err: int | None) -> int:
    value = _ACTIONS[name]
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        value |= errno.EPERM if err is None else err  # runc's default for both
    return value


def _compile(rules: dict[str, Any]) -> bytes:
    """Build the filter with libseccomp and export it as BPF (seccomp_export_bpf(3))."""
    sc = _binding()
    default = _action(rules["defaultAction"], rules.get("defaultErrnoRet"))
    filt = sc.SyscallFilter(default)
    native = sc.system_arch()
    for name in rules["architectures"]:
        arch = getattr(sc.Arch, name.removeprefix("SCMP_ARCH_"), None)
        if arch is not None and arch != native:
            # An arch this libseccomp cannot filter: its syscalls get the bad-arch action (kill).
            with contextlib.suppress(OSError):
                filt.add_arch(arch)
    for rule in rules["syscalls"]:
        action = _action(rule["action"], rule.get("errnoRet"))
        if action == default:
            continue  # libseccomp refuses a rule that changes nothing
        args = [
            sc.Arg(a["index"], _OPS[a["op"]], a["value"], a.get("valueTwo", 0))
            for a in rule.get("args", ())
        ]
        # Comparisons on distinct arguments must all hold (one rule); several on the same
        # argument are alternatives (one rule each), as runc reads the format.
        distinct = len({a["index"] for a in rule.get("args", ())}) == len(args)
        groups = [args] if distinct else [[a] for a in args]
        for name in rule["names"]:
            nr = sc.resolve_syscall(sc.Arch.NATIVE, name)
            if nr == _NR_SCMP_ERROR:
                continue  # unknown to this libseccomp on these arches: skipped, as Docker does
            for group in groups:
                try:
                    filt.add_rule(action, nr, *group)
                except OSError as err:
                    raise KernelError(f"seccomp_rule_add({name})", err.errno or 0) from err
    fd = os.memfd_create("pycont-seccomp", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as f:
        filt.export_bpf(f)
        f.seek(0)
        return f.read()


def _read_cached(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            program = f.read()
    except OSError:
        return None
    # BPF_MAXINSNS (4096) instructions of 8 bytes at most; anything else is not ours.
    return program if program and len(program) % 8 == 0 and len(program) <= 4096 * 8 else None


def _store(path: str, program: bytes) -> None:
    """Write the cache entry atomically; a cache that cannot be written only costs time."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(program)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
