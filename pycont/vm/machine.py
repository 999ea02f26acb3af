"""A virtual machine booted from an image in pycont's store, beside its containers.

The same image, two ways to run it. A container is a process of the host's kernel in its own
namespaces. A VM is a qemu process that emulates a machine, in which a second kernel (Debian's,
``ensure_kernel()``) boots and unpacks the image's files (pycont.vm.imageroot: the very layers
the container mounts) into its own RAM, then runs the image's command::

    v = pycont.vm.boot("busybox", ["sleep", "60"], memory="128m", cpus=1)   # returns when ready
    v.exec(["uname", "-r"]).stdout          # the guest's kernel, not the host's
    v.guest_stats().mem_total               # what the guest's kernel says it has
    v.host_memory().pss                     # what the VM costs the host
    v.remove(force=True)

qemu runs with ``-daemonize``: no pycont process stays behind to supervise a VM. Its record is
its folder (``$PYCONT_ROOT/vms/<id>``): config.json, state.json (qemu's pid and start time, the
marks of its boot), console.log (everything the guest printed: output, marks, exit code) and the
agent's socket. Whoever looks next at a VM whose qemu has gone reads the exit code from the
console and writes it down.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycont import paths, procfs
from pycont.errors import InvalidState, NameConflict, UsageError
from pycont.fsutil import read_json, remove_tree, write_json
from pycont.vm import console
from pycont.vm.agent import Agent, ExecResult, GuestStats
from pycont.vm.errors import VMError

if TYPE_CHECKING:
    from pycont.vm.hostview import HostMemory

MIB = 1 << 20
# Debian's generic kernel does not boot in 64 MiB (measured: it stops before /init).
MIN_MEMORY = 128 * MIB
DEFAULT_MEMORY = "128m"
NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
BOOT_TIMEOUT = 120.0  # TCG on a busy 2-core host boots in ~3.5 s; a hung boot is killed
POLL = 0.02


def vms_dir() -> str:
    return os.path.join(paths.root(), "vms")


def _names_dir() -> str:
    return os.path.join(vms_dir(), "names")


@dataclass
class VMConfig:
    id: str
    name: str
    image: str  # the name it was booted by ("busybox:latest")
    image_id: str  # "sha256:..." of the image's config: the guest root's cache key
    command: list[str]
    env: dict[str, str]
    workdir: str
    memory: int  # bytes of guest RAM (-m)
    cpus: int  # vCPUs (-smp)
    rm: bool
    created: float
    accel: str = ""
    accel_reason: str = ""
    kernel_version: str = ""
    kernel: str = ""  # the vmlinux booted
    initrd_bytes: int = 0
    qemu_command: list[str] = field(default_factory=list)


class VM:
    """One VM, found by its folder. Properties read its state afresh."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        try:
            self.config = VMConfig(**read_json(os.path.join(folder, "config.json")))
        except (OSError, ValueError, TypeError) as err:
            raise VMError(f"no such VM: {os.path.basename(folder)} ({err})") from None
        self.agent = Agent(folder)

    # -- identity and configuration ----------------------------------------------------
    @property
    def id(self) -> str:
        return self.config.id

    @property
    def short_id(self) -> str:
        return self.config.id[:12]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def memory(self) -> int:
        return self.config.memory

    @property
    def cpus(self) -> int:
        return self.config.cpus

    @property
    def accel(self) -> str:
        return self.config.accel

    @property
    def accel_reason(self) -> str:
        return self.config.accel_reason

    @property
    def kernel_version(self) -> str:
        return self.config.kernel_version

    def __repr__(self) -> str:
        return f"<VM {self.name} ({self.short_id}) {self.status} {self.accel}>"

    # -- state ---------------------------------------------------------------------------
    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def state(self) -> dict[str, Any]:
        """state.json, brought up to date: a qemu that has gone is recorded as exited."""
        try:
            st: dict[str, Any] = read_json(self._path("state.json"))
        except (OSError, ValueError):
            st = {"status": "created"}
        if st.get("status") == "running" and not procfs.alive(st["pid"], st["start_time"]):
            st = self._finish(st)
        return st

    def _save(self, st: dict[str, Any]) -> None:
        write_json(self._path("state.json"), st)

    def _finish(self, st: dict[str, Any]) -> dict[str, Any]:
        seen = console.scan(self._path("console.log"))
        st.update(status="exited", pid=None, exit_code=seen.exit_code)
        st.setdefault("finished", time.time())
        if not st.get("exit_reason"):
            if seen.exit_code is None and seen.panic:
                st["exit_reason"] = "kernel panic"
            elif seen.exit_code is None:
                st["exit_reason"] = "the guest ended without an exit code"
            elif st.get("stop_requested"):
                st["exit_reason"] = "stopped"
        st["panic"] = seen.panic
        self._save(st)
        return st

    @property
    def status(self) -> str:
        return str(self.state().get("status", "created"))

    @property
    def pid(self) -> int | None:
        pid = self.state().get("pid")
        return int(pid) if pid else None

    @property
    def exit_code(self) -> int | None:
        code = self.state().get("exit_code")
        return int(code) if code is not None else None

    @property
    def exit_reason(self) -> str:
        return str(self.state().get("exit_reason") or "")

    @property
    def marks(self) -> dict[str, float]:
        return dict(self.state().get("marks") or {})

    @property
    def started(self) -> float:
        return float(self.state().get("started") or self.config.created)

    @property
    def finished(self) -> float | None:
        f = self.state().get("finished")
        return float(f) if f else None

    def _running(self, what: str) -> dict[str, Any]:
        st = self.state()
        if st.get("status") != "running":
            raise InvalidState(f"{what}: VM {self.name} is {st.get('status')}, not running")
        return st

    # -- what runs in it -----------------------------------------------------------------
    def logs(self) -> str:
        """The command's output: the console without pycont's marks."""
        return console.scan(self._path("console.log")).output

    def exec(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
        on_output: Callable[[str, str], None] | None = None,
    ) -> ExecResult:
        """Run a command in the running guest (a shell line or an argv), through the agent."""
        self._running("exec")
        # as docker exec: the environment and working directory the VM's command started with
        return self.agent.exec(
            command,
            env={**self.config.env, **(env or {})},
            workdir=workdir or self.config.workdir,
            timeout=timeout,
            on_output=on_output,
        )

    def guest_stats(self, timeout: float = 5.0) -> GuestStats:
        """The guest kernel's own view: /proc/meminfo, /proc/stat, /proc/uptime."""
        self._running("guest stats")
        return self.agent.stats(timeout)

    def host_memory(self) -> HostMemory:
        """What the qemu process costs the host: RSS, PSS, peak (pycont.vm.hostview)."""
        from pycont.vm.hostview import host_memory

        st = self._running("host memory")
        return host_memory(int(st["pid"]))

    def artefacts(self) -> dict[str, int]:
        """Bytes of what the VM boots from: the kernel and the initrd (image + pycont's)."""
        kernel = os.path.getsize(self.config.kernel) if os.path.exists(self.config.kernel) else 0
        return {"kernel": kernel, "initrd": self.config.initrd_bytes}

    # -- its end -------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the guest to power off; its command's exit code (None: it crashed or was
        killed). ``timeout`` passed: VMError, the VM keeps running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            st = self.state()
            if st.get("status") != "running":
                return st.get("exit_code")
            if deadline is not None and time.monotonic() > deadline:
                raise VMError(f"VM {self.name} still running after {timeout:g} s")
            time.sleep(POLL)

    def _signal_qemu(self, reason: str) -> None:
        st = self.state()
        if st.get("status") != "running":
            return
        st["exit_reason"] = reason
        self._save(st)
        with contextlib.suppress(ProcessLookupError):
            if procfs.alive(st["pid"], st["start_time"]):
                os.kill(st["pid"], signal.SIGKILL)
        while procfs.alive(st["pid"], st["start_time"]):
            time.sleep(POLL)
        self.state()

    def kill(self) -> None:
        """Pull the plug: SIGKILL to qemu. The guest gets no say (exit_reason "killed")."""
        self._signal_qemu("killed")

    def stop(self, timeout: float = 10.0) -> None:
        """docker stop, for a VM: SIGTERM to the guest's command, whose end powers the guest
        off; after ``timeout`` s, qemu is killed."""
        st = self.state()
        if st.get("status") != "running":
            return
        st["stop_requested"] = True
        self._save(st)
        with contextlib.suppress(VMError):
            self.agent.stop(signal.SIGTERM, timeout=min(5.0, max(timeout, 0.5)))
        with contextlib.suppress(VMError):
            self.wait(timeout)
        if self.status == "running":
            self._signal_qemu(f"stopped: killed after {timeout:g} s")

    def remove(self, force: bool = False) -> None:
        """Forget the VM: its folder and its name. A running VM needs ``force`` (killed)."""
        if self.status == "running":
            if not force:
                raise InvalidState(
                    f"cannot remove VM {self.name}: it is running (stop it first, or force)"
                )
            self.kill()
        remove_tree(self.folder)
        with contextlib.suppress(FileNotFoundError):
            if os.readlink(os.path.join(_names_dir(), self.name)) == self.id:
                os.unlink(os.path.join(_names_dir(), self.name))


# -- finding VMs ----------------------------------------------------------------------------
def vms(all: bool = True) -> list[VM]:  # noqa: A002 - docker's ps -a
    """The VMs in the store, oldest first (``all=False``: the running ones). An exited VM
    booted with ``rm=True`` and no one waiting for it is removed when it is found here."""
    found = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(vms_dir()):
            if entry.name == "names" or not entry.is_dir():
                continue
            with contextlib.suppress(VMError):
                found.append(VM(entry.path))
    out = []
    for v in sorted(found, key=lambda v: v.config.created):
        if v.config.rm and v.status == "exited":
            with contextlib.suppress(OSError):
                v.remove()
            continue
        if all or v.status == "running":
            out.append(v)
    return out


def get(ref: str) -> VM:
    """A VM by name, id or id prefix."""
    with contextlib.suppress(OSError):
        vid = os.readlink(os.path.join(_names_dir(), ref))
        return VM(os.path.join(vms_dir(), vid))
    if re.fullmatch(r"[0-9a-f]{1,64}", ref):
        with contextlib.suppress(FileNotFoundError):
            hits = [e for e in os.listdir(vms_dir()) if e.startswith(ref) and e != "names"]
            if len(hits) == 1:
                return VM(os.path.join(vms_dir(), hits[0]))
            if len(hits) > 1:
                raise VMError(f"VM id prefix {ref} is ambiguous: {len(hits)} VMs match")
    raise VMError(f"no such VM: {ref}")


# -- checks of what a user asked for ----------------------------------------------------------
def parse_memory(text: str | int) -> int:
    from pycont.cgroups.units import parse_bytes

    value = text if isinstance(text, int) else parse_bytes("-m", str(text))
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if value < MIN_MEMORY:
        raise UsageError(
            f"invalid VM memory {text!r}: at least 128m (Debian's kernel does not boot in less)"
        )
    if value > total // 2:
        raise UsageError(
            f"invalid VM memory {text!r}: at most half of this machine's RAM ({total // 2 // MIB}m)"
        )
    return value


def parse_cpus(text: str | int | float) -> int:
    ncpu = os.cpu_count() or 1
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past 1e308
        value = -1.0
    if not math.isfinite(value) or value != int(value) or not 1 <= value <= ncpu:
        raise UsageError(
            f"invalid VM --cpus {text!r}: a whole number of vCPUs from 1 to {ncpu} "
            "(a VM has whole virtual CPUs; --cpus 0.5 is a container's CPU quota)"
        )
    return int(value)


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name) or len(name) > 64:
        raise UsageError(
            f"invalid VM name {name!r}: letters, digits and _.- (starting with a letter or "
            "digit), at most 64 characters"
        )
    return name


def _claim_name(name: str | None, vid: str) -> str:
    os.makedirs(_names_dir(), mode=0o700, exist_ok=True)
    if name is not None:
        try:
            os.symlink(vid, os.path.join(_names_dir(), check_name(name)))
        except FileExistsError:
            raise NameConflict(
                f'the VM name "{name}" is already in use by VM '
                f"{os.readlink(os.path.join(_names_dir(), name))[:12]}: remove it or choose "
                "another name"
            ) from None
        return name
    from pycont.runtime.api import _random_name

    while True:
        candidate = "vm_" + _random_name(set())
        with contextlib.suppress(FileExistsError):
            os.symlink(vid, os.path.join(_names_dir(), candidate))
            return candidate


def _new_id() -> str:
    return secrets.token_hex(32)


def folder_of(vid: str) -> Path:
    return Path(vms_dir()) / vid
