"""Booting a VM from an image: ``boot()`` (returns when the guest is ready) and ``run()``.

The steps, each undone if a later one fails (no qemu, folder, name or socket is left):
check what was asked (memory, vCPUs, name, image, the command's presence in the image), find
qemu and the kernel, pick the accelerator (a probe boot: KVM where it boots, TCG otherwise),
claim the name, write the initrd (image root + pycont's boot files + the command), bind the
agent's socket, start qemu (``-daemonize``: it outlives this process, as a detached
container does), and follow the console until the guest says READY.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pycont import procfs
from pycont.errors import CommandNotFound
from pycont.fsutil import remove_tree, write_json
from pycont.kernel.probe import ENV_LAB
from pycont.vm import bootfiles, console
from pycont.vm.agent import PORT_NAME, SOCKET
from pycont.vm.errors import VMError
from pycont.vm.kernel import KernelFiles, cached_kernels, ensure_kernel
from pycont.vm.machine import (
    BOOT_TIMEOUT,
    DEFAULT_MEMORY,
    MIB,
    POLL,
    VM,
    VMConfig,
    _claim_name,
    _names_dir,
    _new_id,
    folder_of,
    parse_cpus,
    parse_memory,
)
from pycont.vm.qemu import QEMU, Accel, choose_accel, host_tsc_khz

Output = Callable[[str], None]


def find_qemu() -> str:
    """qemu-system-x86_64 (``PYCONT_VM_QEMU`` names another); never installed implicitly."""
    name = os.environ.get("PYCONT_VM_QEMU") or QEMU
    found = shutil.which(name)
    if not found:
        raise VMError(
            f"{name} not found: a VM needs qemu (apt-get install qemu-system-x86, or run "
            "bash scripts/course.sh)"
        )
    return found


def available() -> tuple[bool, str]:
    """Whether a VM can boot here, and the reason: qemu, a kernel, the accelerator."""
    if os.environ.get(ENV_LAB):
        # The lab VM is itself a TCG guest (Binder has no KVM): a VM in it is emulated twice,
        # minutes per boot. Chapters then show their recorded figures, labelled.
        return (
            False,
            "inside pycont's lab VM: a VM in it would be emulated twice (minutes per boot)",
        )
    try:
        qemu = find_qemu()
        kernel = boot_kernel()
    except VMError as err:
        return False, str(err)
    accel = choose_accel(kernel)
    return True, f"{os.path.basename(qemu)}, Debian kernel {kernel.version}, {accel.reason}"


def boot_kernel() -> KernelFiles:
    """The newest cached Debian kernel; fetched (ensure_kernel) only when none is cached.
    Asking apt which kernel is current costs ~2 s a boot, and any kernel serves a VM."""
    cached = cached_kernels()
    return cached[0] if cached else ensure_kernel()


def _env_dict(image_env: Sequence[str], env: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    items = list(env.items()) if isinstance(env, Mapping) else [e.partition("=")[::2] for e in env]
    for item in image_env:
        k, _, v = item.partition("=")
        merged[k] = v
    for k, v in items:
        merged[k] = v
    return merged


def qemu_args(
    qemu: str, cfg: VMConfig, accel: Accel, folder: Path, initrd: Path, sock_fd: int
) -> list[str]:
    append = ["console=ttyS0", "panic=-1", "quiet", "loglevel=1", "rdinit=/.pycont/init"]
    khz = host_tsc_khz()
    if accel.name == "tcg" and khz:
        append.append(f"tsc_early_khz={khz}")  # microvm: no HPET/PM timer to calibrate the TSC
    return [
        qemu,
        "-name",
        f"pycont-vm-{cfg.name},process=pycont-vm",
        "-M",
        "microvm",
        *accel.args,
        "-m",
        f"{cfg.memory // MIB}M",
        "-smp",
        str(cfg.cpus),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",  # a guest's poweroff, reboot or panic ends qemu
        "-nic",
        "none",
        "-kernel",
        cfg.kernel,
        "-initrd",
        str(initrd),
        "-append",
        " ".join(append),
        "-chardev",
        f"file,id=con,path={folder / 'console.log'}",
        "-serial",
        "chardev:con",
        "-device",
        "virtio-serial-device",
        "-chardev",
        f"socket,id=agent,fd={sock_fd},server=on,wait=off",
        "-device",
        f"virtserialport,chardev=agent,name={PORT_NAME}",
        "-daemonize",
        "-pidfile",
        str(folder / "qemu.pid"),
    ]


def boot(
    image: str,
    command: Sequence[str] | str | None = None,
    *,
    name: str | None = None,
    memory: str | int = DEFAULT_MEMORY,
    cpus: int | str = 1,
    env: Mapping[str, str] | Sequence[str] = (),
    workdir: str | None = None,
    rm: bool = False,
    boot_timeout: float = BOOT_TIMEOUT,
    accel: Accel | None = None,
    on_output: Output | None = None,
) -> VM:
    """Boot ``image`` as a VM running ``command`` (default: the image's); return it once the
    guest's init is up and its agent answers. ``on_output`` gets console output seen so far."""
    import pycont.images as images
    from pycont.vm.imageroot import find_command, guest_root

    if os.environ.get(ENV_LAB):  # refused at once, rather than a 120 s boot timeout later
        raise VMError(available()[1])
    t0 = time.monotonic()
    mem = parse_memory(memory)
    ncpu = parse_cpus(cpus)
    img = images.resolve(image)
    if isinstance(command, str):
        command = ["sh", "-c", command]
    argv = list(command) if command else [*img.entrypoint, *img.cmd]
    if not argv:
        raise VMError(f"image {img.name} has no command: give one")
    env_map = _env_dict(img.env, env)
    if find_command(img, argv[0], env_map.get("PATH", "")) is None:
        raise CommandNotFound(
            f'exec: "{argv[0]}": executable file not found in $PATH of image {img.name}'
        )
    qemu = find_qemu()
    kernel = boot_kernel()
    accel = accel or choose_accel(kernel)
    vid = _new_id()
    folder = folder_of(vid)
    vm_name = _claim_name(name, vid)
    made_folder = False
    try:
        os.makedirs(folder.parent, mode=0o700, exist_ok=True)
        folder.mkdir(mode=0o700)
        made_folder = True
        cfg = VMConfig(
            id=vid,
            name=vm_name,
            image=img.name,
            image_id=img.id,
            command=argv,
            env=env_map,
            workdir=workdir or img.workdir or "/",
            memory=mem,
            cpus=ncpu,
            rm=rm,
            created=time.time(),
            accel=accel.name,
            accel_reason=accel.reason,
            kernel_version=kernel.version,
            kernel=str(kernel.vmlinux),
        )
        cache = Path(images.Store().root) / "cache" / "vm"
        parts = [
            guest_root(img),
            bootfiles.boot_archive(kernel, cache),
            bootfiles.command_archive(
                folder / "command.cpio",
                argv,
                env=env_map,
                workdir=cfg.workdir,
                hostname=vm_name,
            ),
        ]
        initrd = bootfiles.concatenate(folder / "initrd.img", parts)
        (folder / "command.cpio").unlink()
        cfg.initrd_bytes = initrd.stat().st_size
        vm = _start(cfg, accel, folder, initrd, qemu, t0)
        _wait_ready(vm, t0, boot_timeout, on_output)
        return vm
    except BaseException:
        _undo(folder if made_folder else None, vm_name, vid)
        raise


def _start(cfg: VMConfig, accel: Accel, folder: Path, initrd: Path, qemu: str, t0: float) -> VM:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dfd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # bound through the folder's fd: sun_path is 108 bytes, a store's path can be longer
        sock.bind(f"/proc/self/fd/{dfd}/{SOCKET}")
        sock.listen(1)
        cfg.qemu_command = qemu_args(qemu, cfg, accel, folder, initrd, sock.fileno())
        write_json(str(folder / "config.json"), asdict(cfg))
        res = subprocess.run(
            cfg.qemu_command,
            pass_fds=[sock.fileno()],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        sock.close()  # qemu has its own copy
        os.close(dfd)
    if res.returncode != 0:
        raise VMError(f"qemu failed to start: {res.stderr.strip().splitlines()[-1:]}")
    pid = int((folder / "qemu.pid").read_text())
    start = procfs.start_time(pid)
    write_json(
        str(folder / "state.json"),
        {
            "status": "running",
            "pid": pid,
            "start_time": start,
            "started": time.time(),
            "marks": {"qemu": time.monotonic() - t0},
        },
    )
    return VM(str(folder))


def _wait_ready(vm: VM, t0: float, timeout: float, on_output: Output | None) -> None:
    follow = console.Follower(vm._path("console.log"))
    deadline = t0 + timeout
    marks: dict[str, float] = {}
    while "READY" not in marks:
        out, seen = follow.poll()
        now = time.monotonic() - t0
        for k in seen:
            marks.setdefault(k, now)
        if out and on_output:
            on_output(out)
        if "READY" in marks:
            break
        if vm.status != "running":
            tail = vm.logs().strip().splitlines()[-1:] or ["(nothing)"]
            raise VMError(f"the guest stopped before its init was ready; its console: {tail[0]}")
        if time.monotonic() > deadline:
            vm.kill()
            raise VMError(f"the guest was not ready within {timeout:g} s: killed")
        time.sleep(POLL)
    st = vm.state()
    st["marks"] = {**st.get("marks", {}), **marks}
    st["console_offset"] = [follow.offset, follow.pending]
    vm._save(st)


def _undo(folder: Path | None, name: str, vid: str) -> None:
    if folder is not None:
        with contextlib.suppress(OSError, ValueError):
            pid = int((folder / "qemu.pid").read_text())
            if "pycont-vm" in procfs.cmdline(pid):
                os.kill(pid, signal.SIGKILL)
                while procfs.running_start_time(pid):
                    time.sleep(POLL)
        remove_tree(str(folder))
    with contextlib.suppress(OSError):
        if os.readlink(os.path.join(_names_dir(), name)) == vid:
            os.unlink(os.path.join(_names_dir(), name))


def run(
    image: str,
    command: Sequence[str] | str | None = None,
    *,
    timeout: float | None = None,
    on_output: Output | None = None,
    rm: bool = False,
    **options: object,
) -> VM:
    """Boot, stream the command's output to ``on_output`` and wait for the guest's power-off.
    ``timeout`` s after the request, a guest still running is killed (exit_reason "timeout").
    Ctrl-C kills the VM. ``rm``: the VM is removed when it ends (its record is returned)."""
    t0 = time.monotonic()
    vm = boot(image, command, on_output=on_output, rm=False, **options)  # type: ignore[arg-type]
    try:
        follow = console.Follower(vm._path("console.log"))
        st = vm.state()
        follow.offset, follow.pending = st.get("console_offset", [0, ""])
        marks: dict[str, float] = {}
        while True:
            out, seen = follow.poll()
            now = time.monotonic() - t0
            if out:
                marks.setdefault("OUTPUT", now)
                if on_output:
                    on_output(out)
            for k in seen:
                marks.setdefault(k, now)
            if vm.status != "running":
                out, _ = follow.poll(final=True)
                if out and on_output:
                    on_output(out)
                break
            if timeout is not None and now > timeout:
                vm._signal_qemu("timeout")
                break
            time.sleep(POLL)
        marks.setdefault("EXIT", time.monotonic() - t0)
        st = vm.state()
        st["marks"] = {**st.get("marks", {}), **marks}
        vm._save(st)
    except BaseException:
        vm.kill()
        if rm:
            vm.remove(force=True)
        raise
    if rm:
        snapshot = _Ended(vm)
        vm.remove(force=True)
        return snapshot
    return vm


class _Ended(VM):
    """What a VM run with ``rm=True`` was, kept in memory after its folder is gone."""

    def __init__(self, vm: VM) -> None:  # noqa: D107 - a copy
        self.folder = vm.folder
        self.config = vm.config
        self.agent = vm.agent
        self._state = vm.state()
        self._logs = vm.logs()

    def state(self) -> dict[str, Any]:
        return dict(self._state)

    def logs(self) -> str:
        return self._logs
