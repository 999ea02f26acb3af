"""Run one command in a VM that sees the host's files and has a pure cgroup v2 hierarchy.

    from pycont.vm.guest import run_in_guest
    res = run_in_guest("cat /sys/fs/cgroup/cgroup.controllers", cwd="/")
    res.exit_code, res.console_text

What the guest looks like to the command:

- kernel: Debian's generic kernel (``ensure_kernel()``), booted with
  ``cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1``: /sys/fs/cgroup is cgroup2 and
  every controller is there (v1 cannot claim any);
- files: the host's / (read-only over virtio-9p) under a tmpfs upper layer (overlayfs): every
  host path reads the same and any path can be written, writes stay in the guest's RAM;
  /tmp, /run, /dev/shm are their own tmpfs;
- cgroups: like a systemd machine's: every controller enabled in the root's and
  ``/ci.slice``'s cgroup.subtree_control, the command in the leaf ``/ci.slice/test.scope``
  (``cgroup_leaf=None`` leaves it in the root cgroup);
- root, loopback up, no other network, hostname ``vm``; stdout and stderr go to the serial
  console; the command's exit code comes back in ``VMResult.exit_code``.

Names: nothing the guest mounts or creates is called ``pycont`` (the suite's leak check looks
for that name in mounts and cgroups); the guest's own files live in /run/vm-guest.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pycont.vm.errors import VMError
from pycont.vm.initramfs import build_initramfs, find_busybox
from pycont.vm.kernel import KernelFiles, ensure_kernel
from pycont.vm.qemu import Accel, VMResult, boot

CGROUP_V2_APPEND = "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1"
DEFAULT_LEAF = "/ci.slice/test.scope"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# virtio transports for both machines (mmio: microvm, pci: q35), 9p, overlay.
MODULES = ("virtio_mmio", "virtio_pci", "9pnet_virtio", "9p", "overlay")
EXT4_MODULES = ("virtio_blk", "crc32c_generic", "ext4")
TEMP_PREFIX = "vm-guest-"
HIDE = ("/var/lib/pycont",)  # the host's store: the guest is a fresh machine

# Stage 1: PID 1 in the initramfs (busybox sh). Loads the modules, mounts the host, builds the
# writable root, hands over with switch_root (the root is then a real mount, as on a host:
# pivot_root in containers works as it does there).
STAGE1 = r"""#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
echo PYCONT-VM-UP
fail() { echo "PYCONT-VM-ERROR $*"; echo "PYCONT-VM-EXIT 125"; poweroff -f; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
date -s "@$(cat /etc/vm-epoch)" >/dev/null 2>&1
# insmod with the module's parameters from the kernel command line (module.param=value),
# which modprobe would pass and busybox insmod does not.
for m in $(cat /modules/order); do
    name=${m%.ko}
    params=$(tr ' ' '\n' </proc/cmdline | sed -n "s/^$name\.//p")
    insmod /modules/$m $params || fail "insmod $m $params"
done
mkdir -p /host /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 host /host \
    || mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose host /host \
    || fail "cannot mount the host's filesystem (9p tag host)"
mount -t tmpfs -o mode=0755 vm-rw /rw
mkdir -p /rw/upper /rw/work
# host paths the guest must not see (a whiteout in the upper layer), e.g. the host's pycont store
for p in $(cat /etc/vm-hide); do
    [ -e /host$p ] || [ -L /host$p ] || continue
    d=
    for part in $(dirname $p | tr '/' ' '); do
        d=$d/$part
        [ -d /rw/upper$d ] && continue
        mkdir /rw/upper$d
        chmod $(stat -c %a /host$d) /rw/upper$d
        chown $(stat -c %u:%g /host$d) /rw/upper$d
    done
    mknod /rw/upper$p c 0 0
done
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work vm-root /newroot \
    || fail "overlay of /host and tmpfs failed"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
SCRATCH=$(cat /etc/vm-scratch)
if [ "$SCRATCH" = ext4 ]; then
    i=0
    while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    mount -t ext4 -o noatime /dev/vda $R/tmp || fail "cannot mount the ext4 scratch disk"
    chmod 1777 $R/tmp
else
    mount -t tmpfs -o mode=1777 tmpfs $R/tmp
fi
mount -t tmpfs -o mode=0755 tmpfs $R/run
# host paths under /tmp or /run the command needs (a checkout in /tmp): shown again above the
# guest's own /tmp, writable through an overlay whose changes stay in the guest
i=0
for p in $(cat /etc/vm-keep); do
    i=$((i + 1))
    mkdir -p /rw/keep$i/u /rw/keep$i/w $R$p
    mount -t overlay -o lowerdir=/host$p,upperdir=/rw/keep$i/u,workdir=/rw/keep$i/w vm-keep $R$p \
        || fail "cannot show the host's $p in the guest"
done
CG=$R/sys/fs/cgroup
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 $CG \
    || mount -t cgroup2 cgroup2 $CG || fail "cannot mount cgroup2"
LEAF=$(cat /etc/vm-cgroup-leaf)
if [ -n "$LEAF" ]; then
    # as systemd does: every controller enabled down to the leaf's parent
    dir=$CG
    for part in $(echo "${LEAF#/}" | tr '/' ' '); do
        for c in $(cat $dir/cgroup.controllers); do
            echo "+$c" >$dir/cgroup.subtree_control 2>/dev/null || echo "note: +$c refused in $dir"
        done
        dir=$dir/$part
        mkdir -p $dir
    done
fi
hostname vm
ip link set lo up 2>/dev/null
G=$R/run/vm-guest
mkdir -p $G
cp /bin/busybox /stage2 /command /etc/vm-cgroup-leaf $G/
exec switch_root $R /run/vm-guest/busybox sh /run/vm-guest/stage2
fail "switch_root failed"
"""

# Stage 2: PID 1 on the new root. Runs the command in the leaf cgroup, reports, powers off.
STAGE2 = r"""G=/run/vm-guest
BB=$G/busybox
LEAF=$($BB cat $G/vm-cgroup-leaf)
echo PYCONT-VM-READY
# from here only critical kernel messages on the console (not the OOM kills tests provoke);
# the whole kernel log stays in dmesg
$BB dmesg -n 3
(
    [ -z "$LEAF" ] || echo 0 >/sys/fs/cgroup$LEAF/cgroup.procs
    exec /bin/sh $G/command
) </dev/null >/dev/console 2>&1
rc=$?
echo
echo "PYCONT-VM-EXIT $rc"
$BB poweroff -f
"""


def command_script(command: str | list[str], cwd: str, env: Mapping[str, str]) -> str:
    """The shell script (for the host's /bin/sh) that the guest runs as its command."""
    base = {"PATH": GUEST_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", "USER": "root"}
    lines = ["#!/bin/sh"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in {**base, **env}.items()]
    lines.append(f"cd {shlex.quote(cwd)} || exit 125")
    lines.append(command if isinstance(command, str) else shlex.join(command))
    return "\n".join(lines) + "\n"


def run_in_guest(
    command: str | list[str],
    *,
    cwd: str = "/",
    env: Mapping[str, str] | None = None,
    kernel: KernelFiles | None = None,
    cache_dir: str | Path | None = None,
    append: str = CGROUP_V2_APPEND,
    cgroup_leaf: str | None = DEFAULT_LEAF,
    memory: str = "1G",
    smp: int = 2,
    machine: str = "microvm",
    timeout: float = 1800.0,
    on_output: Callable[[str], None] | None = None,
    virtfs_root: str = "/",
    accel: Accel | None = None,
    scratch: str = "tmpfs",
    scratch_size: str = "4G",
    hide: Sequence[str] = HIDE,
    keep: Sequence[str] = (),
    extra_modules: Sequence[str] = (),
    extra_args: Sequence[str] = (),
) -> VMResult:
    """Boot the VM, run ``command`` (a shell line, or an argv list) in ``cwd``, power off.

    ``hide`` lists host paths the guest does not see (default: the host's pycont store, so
    that the guest starts with none). ``keep`` lists host paths under /tmp or /run that the
    guest shows anyway, above its own /tmp and /run (e.g. a checkout in /tmp).
    ``extra_modules`` are loaded after the base ones (e.g. ``virtio_net``), ``extra_args`` go
    to qemu as they are (e.g. a ``-netdev``).

    ``scratch`` is what the guest's /tmp is: ``tmpfs`` (RAM; on the 6.1 kernel it has no
    ``user.*`` xattrs, which rootless overlay and its tests use) or ``ext4``: a sparse
    ``scratch_size`` disk image made here with mkfs.ext4, on virtio-blk, removed afterwards
    (it is also a block device, /dev/vda, for io.max tests).

    The result's ``marks`` hold ``UP`` (init started: the kernel's boot), ``READY`` (host
    mounted, root built: the command starts) and ``EXIT``, in seconds after qemu started.
    """
    if scratch not in ("tmpfs", "ext4"):
        raise VMError(f"scratch {scratch!r}: tmpfs or ext4")
    kernel = kernel or ensure_kernel(cache_dir)
    extra: list[str] = list(extra_args)
    modules: tuple[str, ...] = MODULES + tuple(extra_modules)
    remove_stale_temps()
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as tmp:
        (Path(tmp) / "owner.pid").write_text(f"{os.getpid()}\n")
        if scratch == "ext4":
            extra += scratch_disk(Path(tmp) / "scratch.img", scratch_size, machine)
            modules += EXT4_MODULES
        initrd = build_initramfs(
            Path(tmp) / "initrd.cpio",
            STAGE1,
            modules=kernel.modules(modules),
            busybox=find_busybox(),
            files={
                "/stage2": STAGE2,
                "/command": command_script(command, cwd, env or {}),
                "/etc/vm-cgroup-leaf": (cgroup_leaf or "") + "\n",
                "/etc/vm-epoch": f"{int(time.time())}\n",
                "/etc/vm-scratch": scratch + "\n",
                "/etc/vm-hide": "".join(p + "\n" for p in hide),
                "/etc/vm-keep": "".join(p + "\n" for p in keep),
            },
        )
        return boot(
            kernel,
            initrd,
            f"quiet {append}".strip(),
            memory=memory,
            smp=smp,
            machine=machine,
            timeout=timeout,
            on_output=on_output,
            virtfs_root=virtfs_root,
            accel=accel,
            extra_args=extra,
        )


def in_guest() -> bool:
    """True inside a guest that run_in_guest() booted (its stage 2 lives in /run/vm-guest)."""
    return os.path.exists("/run/vm-guest/stage2")


def remove_stale_temps() -> None:
    """Remove the temp folders (initrd, scratch disk) of runs whose process was SIGKILLed."""
    top = Path(tempfile.gettempdir())
    for d in top.glob(TEMP_PREFIX + "*"):
        try:
            pid = int((d / "owner.pid").read_text())
        except (OSError, ValueError):
            continue  # not ours, or being made right now
        if not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(d, ignore_errors=True)


def scratch_disk(image: Path, size: str, machine: str) -> list[str]:
    """Make a sparse ext4 image (no journal: it lives for one boot); return qemu's arguments."""
    mkfs = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"
    res = subprocess.run(
        [mkfs, "-q", "-F", "-m", "0", "-O", "^has_journal", "-L", "vm-scratch", str(image), size],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise VMError(f"mkfs.ext4 {image} {size} failed: {res.stderr.strip()}")
    dev = "virtio-blk-device" if machine == "microvm" else "virtio-blk-pci"
    return [
        "-drive",
        f"file={image},if=none,id=scratch,format=raw,cache=unsafe,discard=unmap",
        "-device",
        f"{dev},drive=scratch",
    ]
