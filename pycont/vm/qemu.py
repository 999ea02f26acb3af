"""Run one qemu-system-x86_64 guest to its end and hand back what it printed.

``boot()`` starts qemu with the serial console on a pipe, streams the console to a callback,
and returns a :class:`VMResult` when the guest powers off (``-no-reboot``: a panic or reboot
ends qemu too) or the timeout passes; qemu is killed on timeout, on an exception and on
Ctrl-C, so no process outlives the call.

Guest protocol (what ``pycont.vm.guest`` writes into its /init): lines ``PYCONT-VM-<WORD>``
mark moments of the boot (``VMResult.marks`` has the second each one appeared; ``UP`` is
"init started", which is what ``boot_seconds`` measures) and ``PYCONT-VM-EXIT <code>`` carries
the exit code of the guest's command.

Accelerator: KVM only when a probe boot under it reaches /init. On a nested paravirtual KVM
(kvm_pvm: /sys/module/kvm_pvm exists) a stock kernel cannot boot, so no probe is made there
and TCG is used. ``PYCONT_VM_ACCEL=tcg|kvm`` forces the choice.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pycont.vm.apt import apt_install
from pycont.vm.errors import VMError
from pycont.vm.kernel import KernelFiles

QEMU = "qemu-system-x86_64"
MARK = "PYCONT-VM-"
_MARK_RE = re.compile(r"^PYCONT-VM-([A-Z]+)(?: (-?\d+))?\s*$", re.M)


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" | "tcg"
    reason: str
    args: tuple[str, ...]


@dataclass
class VMResult:
    exit_code: int | None  # from "PYCONT-VM-EXIT <code>"; None when the guest never said
    console_text: str  # everything the serial console printed (\r\n turned into \n)
    boot_seconds: float | None  # qemu start to "PYCONT-VM-UP" (init running)
    total_seconds: float
    accel: str
    accel_reason: str
    machine: str
    timed_out: bool = False
    qemu_returncode: int | None = None
    marks: dict[str, float] = field(default_factory=dict)  # "UP" -> seconds after start
    command: list[str] = field(default_factory=list)  # the qemu command line
    qemu_pid: int | None = None  # reaped before boot() returns

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.console_text.rstrip("\n").splitlines()[-lines:])


# --- host tools --------------------------------------------------------------------------------


def ensure_qemu(install: bool = True) -> str:
    """The path of qemu-system-x86_64, installing Debian's qemu-system-x86 when missing."""
    found = shutil.which(QEMU)
    if found:
        return found
    if install:
        apt_install(["qemu-system-x86"])
        found = shutil.which(QEMU)
        if found:
            return found
    raise VMError(f"{QEMU} not found (apt-get install qemu-system-x86)")


def host_tsc_khz() -> int | None:
    """The host's TSC rate in kHz ("cpu MHz" of /proc/cpuinfo); TCG's guest TSC runs at it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":", 1)[1]) * 1000)
    except (OSError, ValueError):
        pass
    return None


# --- accelerator -------------------------------------------------------------------------------

_accel_cache: dict[str, Accel] = {}

# tb-size (MiB): TCG's translated-code cache. qemu's default is 1 GiB, which it fills as the
# guest runs new code: with the lab VM's 1 GiB of RAM, qemu then passed Binder's 2 GB and was
# OOM-killed mid-chapter. 256 MiB keeps qemu near RAM + 0.3 GiB; a full cache is flushed and
# refilled (qemu-system(1): -accel tcg,tb-size=n).
TCG_TB_MIB = 256
TCG = ("-accel", f"tcg,thread=multi,tb-size={TCG_TB_MIB}", "-cpu", "max")


def choose_accel(kernel: KernelFiles | Path | str | None = None, *, probe: bool = True) -> Accel:
    """KVM when a probe boot under it reaches /init, TCG otherwise; with the reason."""
    forced = os.environ.get("PYCONT_VM_ACCEL", "").lower()
    if forced == "tcg":
        return Accel("tcg", "TCG forced by PYCONT_VM_ACCEL=tcg", TCG)
    if forced == "kvm":
        return Accel("kvm", "KVM forced by PYCONT_VM_ACCEL=kvm", ("-accel", "kvm", "-cpu", "host"))
    if os.path.isdir("/sys/module/kvm_pvm"):
        return Accel("tcg", "KVM refused: kvm_pvm cannot boot a stock kernel; using TCG", TCG)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accel("tcg", "no usable /dev/kvm; using TCG", TCG)
    if not probe or kernel is None:
        return Accel("tcg", "/dev/kvm present but not probed; using TCG", TCG)
    vmlinux = str(kernel.vmlinux if isinstance(kernel, KernelFiles) else kernel)
    if vmlinux not in _accel_cache:
        _accel_cache[vmlinux] = _probe_kvm(vmlinux)
    return _accel_cache[vmlinux]


KVM_CPUS = ("host", "host,-arch-capabilities")  # nested KVM may refuse MSR 0x10a


def _probe_kvm(vmlinux: str, timeout: float = 30.0) -> Accel:
    """Boot a tiny initramfs under KVM with each of KVM_CPUS; the first that reaches /init wins."""
    from pycont.vm.initramfs import build_initramfs

    why = []
    with tempfile.TemporaryDirectory(prefix="vm-probe-") as tmp:
        initrd = build_initramfs(
            Path(tmp) / "probe.cpio",
            "#!/bin/sh\necho PYCONT-VM-UP\necho PYCONT-VM-EXIT 0\npoweroff -f\n",
        )
        for cpu in KVM_CPUS:
            kvm = Accel(
                "kvm",
                f"KVM: a probe boot with -cpu {cpu} reached /init",
                ("-accel", "kvm", "-cpu", cpu),
            )
            res = boot(
                vmlinux,
                initrd,
                "",
                memory="128M",
                smp=1,
                virtfs_root=None,
                timeout=timeout,
                accel=kvm,
            )
            if res.exit_code == 0:
                return kvm
            if res.timed_out:
                why.append(f"-cpu {cpu}: no /init within {timeout:.0f} s")
            else:
                last = res.tail(1).strip()[:120]
                why.append(f"-cpu {cpu}: qemu exit {res.qemu_returncode} ({last})")
    return Accel("tcg", f"KVM refused: {'; '.join(why)}; using TCG", TCG)


def _die_with_parent() -> None:
    """In the child: SIGKILL when the process that started qemu dies, even by SIGKILL."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# --- boot --------------------------------------------------------------------------------------


def qemu_command(
    vmlinux: str,
    initrd: str,
    append: str,
    *,
    memory: str,
    smp: int,
    virtfs_root: str | None,
    accel: Accel,
    machine: str,
    extra_args: Sequence[str] = (),
    qemu: str = QEMU,
) -> list[str]:
    """The qemu command line (also what ``VMResult.command`` shows)."""
    if machine not in ("microvm", "q35"):
        raise VMError(f"machine {machine!r}: microvm or q35")
    cmdline = ["console=ttyS0", "panic=-1"]
    khz = host_tsc_khz()
    if machine == "microvm" and accel.name == "tcg" and khz:
        # microvm has no HPET/PM timer: on a busy host the PIT calibration of the TSC can
        # fail and the boot hangs. TCG's guest TSC runs at the host's rate: say it.
        cmdline.append(f"tsc_early_khz={khz}")
    if append:
        cmdline.append(append)
    cmd = [
        qemu,
        "-M",
        machine,
        *accel.args,
        "-m",
        memory,
        "-smp",
        str(smp),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        vmlinux,
        "-initrd",
        initrd,
        "-append",
        " ".join(cmdline),
    ]
    if virtfs_root is not None:
        dev = "virtio-9p-device" if machine == "microvm" else "virtio-9p-pci"
        cmd += [
            "-fsdev",
            f"local,id=host,path={virtfs_root},security_model=none,readonly=on,multidevs=remap",
            "-device",
            f"{dev},fsdev=host,mount_tag=host",
        ]
    return [*cmd, *extra_args]


def boot(
    kernel: KernelFiles | Path | str,
    initrd: Path | str,
    append: str = "",
    *,
    memory: str = "1G",
    smp: int = 2,
    virtfs_root: str | None = "/",
    timeout: float = 900.0,
    machine: str = "microvm",
    accel: Accel | None = None,
    on_output: Callable[[str], None] | None = None,
    extra_args: Sequence[str] = (),
) -> VMResult:
    """Boot ``kernel`` with ``initrd`` until the guest powers off or ``timeout`` s pass.

    ``virtfs_root`` is shared read-only as 9p tag ``host`` (None: no share). ``on_output``
    gets the console text as it arrives (already with \\n line ends).
    """
    vmlinux = str(kernel.vmlinux if isinstance(kernel, KernelFiles) else kernel)
    accel = accel or choose_accel(kernel)
    cmd = qemu_command(
        vmlinux,
        str(initrd),
        append,
        memory=memory,
        smp=smp,
        virtfs_root=virtfs_root,
        accel=accel,
        machine=machine,
        extra_args=extra_args,
        qemu=ensure_qemu(),
    )
    chunks: list[str] = []
    marks: dict[str, float] = {}
    exit_code: int | None = None
    timed_out = False
    pending = ""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")  # UTF-8 split across reads
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us, and we end qemu (below)
        preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads of ours run in the child)
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    try:
        while True:
            left = start + timeout - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            text = decoder.decode(data).replace("\r", "")  # the tty's \r\n
            chunks.append(text)
            if on_output:
                on_output(text)
            pending += text
            *lines, pending = pending.split("\n")
            now = time.monotonic() - start
            for line in lines:
                m = _MARK_RE.match(line.strip())
                if m:
                    marks.setdefault(m.group(1), now)
                    if m.group(1) == "EXIT" and m.group(2) is not None:
                        exit_code = int(m.group(2))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    m = _MARK_RE.match(pending.strip())  # a last line without its newline
    if m and m.group(1) == "EXIT" and m.group(2) is not None:
        exit_code = int(m.group(2))
    return VMResult(
        exit_code=exit_code,
        console_text="".join(chunks),
        boot_seconds=marks.get("UP"),
        total_seconds=time.monotonic() - start,
        accel=accel.name,
        accel_reason=accel.reason,
        machine=machine,
        timed_out=timed_out,
        qemu_returncode=proc.returncode,
        marks=marks,
        command=cmd,
        qemu_pid=proc.pid,
    )
