"""The real kernel: syscalls through ctypes (Python 3.11's os module has no unshare or setns)."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import signal
import socket
import struct

from pycont.errors import KernelError, Unsupported
from pycont.kernel._base import describe_cap, describe_flags

# glibc's soname; ctypes.util.find_library would cost tens of ms in every helper start.
_libc = ctypes.CDLL("libc.so.6", use_errno=True)

_libc.unshare.argtypes = [ctypes.c_int]
_libc.unshare.restype = ctypes.c_int
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.mount.restype = ctypes.c_int
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.umount2.restype = ctypes.c_int
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.sethostname.restype = ctypes.c_int
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_libc.prctl.restype = ctypes.c_int
_libc.syscall.restype = ctypes.c_long


class _CapHeader(ctypes.Structure):
    # capset(2): struct __user_cap_header_struct.
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    # capset(2): struct __user_cap_data_struct; version 3 takes two, low and high 32 bits.
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_libc.capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
_libc.capset.restype = ctypes.c_int

# glibc has no pivot_root wrapper and its clone() wants a new stack: use syscall(2).
_SYSCALLS = {
    "x86_64": {"clone": 56, "pivot_root": 155, "seccomp": 317, "clone3": 435},
    "aarch64": {"clone": 220, "pivot_root": 41, "seccomp": 277, "clone3": 435},
}
CLONE_INTO_CGROUP = 0x200000000  # linux/sched.h, Linux >= 5.7


class _CloneArgs(ctypes.Structure):
    """struct clone_args of clone3(2), up to its ``cgroup`` field (CLONE_ARGS_SIZE_VER2)."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
            "set_tid",
            "set_tid_size",
            "cgroup",
        )
    ]


_NR = _SYSCALLS.get(os.uname().machine, _SYSCALLS["x86_64"])

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
IFF_UP = 0x1
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2  # prctl(2)'s mode
SECCOMP_SET_MODE_FILTER = 1  # seccomp(2)'s operation


class _SockFprog(ctypes.Structure):
    # <linux/filter.h>: struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _check(
    ret: int, op: str, target: str | None = None, unsupported_on: tuple[int, ...] = ()
) -> int:
    if ret == -1:
        err = ctypes.get_errno()
        cls = Unsupported if err in unsupported_on else KernelError
        raise cls(op, err, target)
    return ret


def _b(s: str) -> bytes:
    return os.fsencode(s)


class LinuxKernel:
    """Calls the kernel for real."""

    def unshare(self, flags: int) -> None:
        # unshare(2): EPERM/EINVAL/ENOSPC here mean the machine refuses the namespace.
        _check(
            _libc.unshare(flags),
            f"unshare({describe_flags(flags)})",
            unsupported_on=(1, 22, 28),
        )

    def clone(self, flags: int, cgroup_fd: int | None = None) -> int:
        # clone(2) with a NULL stack behaves like fork(2) (the child runs on a copy of the
        # parent's stack) but can create namespaces at the same time, so the child is PID 1
        # of its new PID namespace and every new namespace is owned by its new user
        # namespace. Only safe in a single-threaded process: that is why it runs in the
        # helper, never in a notebook kernel.
        if cgroup_fd is not None:
            # clone3(2) CLONE_INTO_CGROUP (cgroup v2): the child is born in that cgroup. A
            # write to cgroup.procs would move it there afterwards, under the cgroup
            # threadgroup lock taken for writing, which waits out an RCU grace period (a few
            # ms, longer on a busy machine); a fork into a cgroup takes that lock to read.
            args = _CloneArgs(
                flags=flags | CLONE_INTO_CGROUP, exit_signal=signal.SIGCHLD, cgroup=cgroup_fd
            )
            pid = _libc.syscall(
                _NR["clone3"], ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args))
            )
            what = f"clone3({describe_flags(flags)}|CLONE_INTO_CGROUP)"
            return _check(pid, what, unsupported_on=(1, 7, 22, 28, 38, 95))
        pid = _libc.syscall(
            _NR["clone"],
            ctypes.c_ulong(flags | signal.SIGCHLD),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        )
        return _check(pid, f"clone({describe_flags(flags)})", unsupported_on=(1, 22, 28))

    def setns(self, fd: int, nstype: int, path: str = "") -> None:
        _check(_libc.setns(fd, nstype), f"setns({describe_flags(nstype)})", path or None)

    def mount(
        self, source: str, target: str, fstype: str = "", flags: int = 0, data: str = ""
    ) -> None:
        ret = _libc.mount(
            _b(source) if source else None,
            _b(target),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        )
        _check(
            ret, f"mount {fstype or describe_flags(flags, 'mount')} {source or 'none'} on", target
        )

    def umount2(self, target: str, flags: int = 0) -> None:
        _check(_libc.umount2(_b(target), flags), "umount2", target)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        ret = _libc.syscall(
            _NR["pivot_root"], ctypes.c_char_p(_b(new_root)), ctypes.c_char_p(_b(put_old))
        )
        _check(ret, "pivot_root", new_root)

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        _check(_libc.sethostname(raw, len(raw)), "sethostname", name)

    def _prctl(self, option: int, arg: int, what: str) -> None:
        _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl({what})")

    def drop_bounding(self, cap: int) -> None:
        self._prctl(PR_CAPBSET_DROP, cap, f"PR_CAPBSET_DROP, {describe_cap(cap)}")

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)  # pid 0: this thread
        data = (_CapData * 2)()
        for i, shift in enumerate((0, 32)):
            data[i].effective = (effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        what = f"capset(eff={effective:#x}, prm={permitted:#x}, inh={inheritable:#x})"
        _check(_libc.capset(ctypes.byref(header), data), what)

    def clear_ambient(self) -> None:
        ret = _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        # prctl(2): EINVAL before Linux 4.3, which has no ambient set: nothing to clear.
        if ret == -1 and ctypes.get_errno() == errno.EINVAL:
            return
        _check(ret, "prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)")

    def load_seccomp(self, program: bytes, flags: int = 0) -> None:
        buf = ctypes.create_string_buffer(program, len(program))
        prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
        if flags:
            op = "seccomp(SECCOMP_SET_MODE_FILTER)"
            ret = _libc.syscall(_NR["seccomp"], SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(prog))
        else:
            op = "prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)"
            ret = _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0)
        if ret == -1:
            err = ctypes.get_errno()
            hint = "needs CAP_SYS_ADMIN or no_new_privs" if err == errno.EACCES else ""
            raise KernelError(op, err, None, hint)

    def set_dumpable(self, dumpable: bool) -> None:
        self._prctl(PR_SET_DUMPABLE, int(dumpable), f"PR_SET_DUMPABLE, {int(dumpable)}")

    def set_child_subreaper(self) -> None:
        self._prctl(PR_SET_CHILD_SUBREAPER, 1, "PR_SET_CHILD_SUBREAPER")

    def set_pdeathsig(self, sig: int) -> None:
        self._prctl(PR_SET_PDEATHSIG, sig, "PR_SET_PDEATHSIG")

    def set_no_new_privs(self) -> None:
        self._prctl(PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")

    def set_link_up(self, name: str) -> None:
        # netdevice(7): SIOCGIFFLAGS/SIOCSIFFLAGS on any socket of the network namespace.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ifreq = struct.pack("16sH14x", name.encode(), 0)
            try:
                flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
                fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | IFF_UP))
            except OSError as err:
                raise KernelError("ioctl(SIOCSIFFLAGS, IFF_UP)", err.errno or 0, name) from err

    def set_address(self, name: str, address: str, prefixlen: int) -> None:
        # netdevice(7): SIOCSIFADDR then SIOCSIFNETMASK, each an ifreq holding a sockaddr_in;
        # the kernel adds the subnet's route once the device is up.
        mask = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for op, code, value in (
                ("SIOCSIFADDR", SIOCSIFADDR, socket.inet_aton(address)),
                ("SIOCSIFNETMASK", SIOCSIFNETMASK, mask.to_bytes(4, "big")),
            ):
                ifreq = struct.pack("16sH2x4s8x", name.encode(), socket.AF_INET, value)
                try:
                    fcntl.ioctl(s, code, ifreq)
                except OSError as err:
                    raise KernelError(
                        f"ioctl({op}, {address}/{prefixlen})", err.errno or 0, name
                    ) from err

    def write_file(self, path: str, data: str) -> None:
        # One write(2): cgroupfs and /proc/<pid>/uid_map act on (and fail) that very write.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError as err:
            raise KernelError(
                f"write {json.dumps(data.strip())} to", err.errno or errno.EIO, path
            ) from err
        try:
            os.write(fd, data.encode())
        except OSError as err:
            raise KernelError(
                f"write {json.dumps(data.strip())} to", err.errno or errno.EIO, path
            ) from err
        finally:
            os.close(fd)

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            pass
        except OSError as err:
            raise KernelError("mkdir", err.errno or errno.EIO, path) from err

    def rmdir(self, path: str) -> None:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise KernelError("rmdir", err.errno or errno.EIO, path) from err
