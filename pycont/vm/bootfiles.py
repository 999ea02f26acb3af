"""What pycont adds to an image to boot it: its init, its agent, a static busybox, two modules.

The guest's root is the image's own files (pycont.vm.imageroot: the same layers the container
mounts), and beside them, in /.pycont, what pycont brings: the kernel unpacks concatenated cpio
archives into one rootfs (Documentation/driver-api/early-userspace/buffer-format.rst), so the
initrd of a VM is three archives end to end: the image (cached by image id), pycont's boot
files (cached by kernel and content) and the VM's own command (a few hundred bytes).

The init, as PID 1 (``rdinit=/.pycont/init``): mounts /proc, /sys, /dev, a tmpfs on /run;
loads virtio_mmio and virtio_console; starts the agent on its port; runs the command with its
output on the serial console; prints ``PYCONT-VM-EXIT <code>``; powers off, which ends qemu.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from pycont.vm.agent import AGENT, PORT_NAME, exec_script
from pycont.vm.initramfs import CpioWriter, find_busybox
from pycont.vm.kernel import KernelFiles, read_module

MODULES = ("virtio_mmio", "virtio_console")

INIT = r"""#!/.pycont/busybox sh
B=/.pycont/busybox
$B mkdir -p /proc /sys /dev /run /tmp
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
$B mkdir -p /dev/pts /dev/shm
$B mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
$B mount -t tmpfs -o mode=1777 tmpfs /dev/shm
$B mount -t tmpfs -o mode=0755 tmpfs /run
echo PYCONT-VM-UP
# insmod with the module's parameters from the kernel command line (microvm passes the
# virtio_mmio.device= entries there; modprobe would hand them over, busybox insmod does not)
for m in $($B cat /.pycont/modules/order); do
    name=${m%.ko}
    params=$($B tr ' ' '\n' </proc/cmdline | $B sed -n "s/^$name\.//p")
    $B insmod /.pycont/modules/$m $params || echo "PYCONT-VM-ERROR insmod $m"
done
$B hostname "$($B cat /.pycont/hostname)"
$B ip link set lo up 2>/dev/null
port=
i=0
while [ -z "$port" ] && [ $i -lt 200 ]; do
    for p in /sys/class/virtio-ports/*; do
        [ "$($B cat $p/name 2>/dev/null)" = PORTNAME ] && [ -c /dev/${p##*/} ] && port=/dev/${p##*/}
    done
    [ -n "$port" ] || $B sleep 0.02
    i=$((i + 1))
done
if [ -n "$port" ]; then
    $B sh /.pycont/agent "$port" </dev/null >/dev/null 2>&1 &
else
    echo "PYCONT-VM-ERROR no agent port"
fi
echo PYCONT-VM-READY
$B sh /.pycont/command </dev/null &
echo $! >/run/.pycont-command.pid
wait $!
rc=$?
echo "PYCONT-VM-EXIT $rc"
$B sync
$B poweroff -f
""".replace("PORTNAME", PORT_NAME)


def boot_archive(kernel: KernelFiles, cache: Path) -> Path:
    """The cpio of /.pycont (busybox, modules, init, agent), cached by what goes into it."""
    busybox = find_busybox()
    modules = kernel.modules(MODULES)
    key = hashlib.sha256()
    for part in (INIT, AGENT, kernel.version, busybox, str(os.stat(busybox).st_mtime_ns)):
        key.update(part.encode() + b"\0")
    out = cache / f"boot-{key.hexdigest()[:16]}.cpio"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".boot-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            cpio = CpioWriter(f)
            cpio.dir(".pycont", 0o700)
            cpio.dir(".pycont/modules", 0o700)
            cpio.file(".pycont/busybox", Path(busybox).read_bytes(), 0o755)
            names = []
            for path in modules:
                name = path.name.split(".ko", 1)[0] + ".ko"
                cpio.file(f".pycont/modules/{name}", read_module(path))
                names.append(name)
            cpio.file(".pycont/modules/order", "".join(n + "\n" for n in names).encode())
            cpio.file(".pycont/init", INIT.encode(), 0o755)
            cpio.file(".pycont/agent", AGENT.encode(), 0o755)
            cpio.close()
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    return out


def command_archive(
    out: Path,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    workdir: str,
    hostname: str,
) -> Path:
    """The VM's own part: its command as a script, and its host name (no directories: the
    boot archive made /.pycont, and an entry repeated in a later archive would replace it)."""
    with open(out, "wb") as f:
        cpio = CpioWriter(f)
        cpio.file(".pycont/command", exec_script(list(command), env, workdir).encode(), 0o755)
        cpio.file(".pycont/hostname", (hostname + "\n").encode(), 0o644)
        cpio.close()
    return out


def concatenate(out: Path, parts: Sequence[Path]) -> Path:
    """One initrd from several archives (qemu's -initrd takes one file)."""
    with open(out, "wb") as dst:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    return out
