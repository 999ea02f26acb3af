"""The lab VM: where the course runs when this machine grants no isolation.

On Binder a learner is uid 1000 with ``no_new_privs`` and, often, no user namespaces: no
container can be made there. pycont then boots its own small VM (Debian's kernel under qemu,
TCG when there is no usable KVM), in which it is root with a pure cgroup v2 hierarchy, and
runs the whole Jupyter kernel inside it. Every cell of every chapter is then a real kernel
experiment: namespaces, cgroup limits, overlay mounts, read back from /proc and /sys exactly as
on a root host, because inside the VM it *is* a root host.

Why the whole kernel and not a proxy of ``pycont.run``: the chapters look at the kernel state
themselves (``/proc/PID/ns``, cgroup files, overlay's upper dir); a proxy would give the learner
containers in one machine and a notebook that inspects another.

The guest sees the host's files read-only over virtio-9p (the same Python, the same venv, the
same checkout), writes land in the guest's RAM; the kernel's five ZMQ ports are forwarded from
the host's loopback by qemu's user-mode network with ``restrict=on`` (the guest reaches nothing
else: not the host, not the outside).

:func:`choose_backend` decides, from the probe or ``PYCONT_BACKEND=local|vm``;
:func:`lab_info` tells code inside the guest that it is there and why.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycont import paths
from pycont.images import ENV_HOST_IMAGES
from pycont.kernel.probe import ENV_LAB
from pycont.vm.errors import VMError

if TYPE_CHECKING:
    from pycont.vm.qemu import VMResult

ENV_BACKEND = "PYCONT_BACKEND"  # local | vm: force the backend
BACKENDS = ("local", "vm")
GUEST_IP = "10.0.2.15"  # qemu user-mode network's first guest address (slirp's default)
GUEST_STORE = "/tmp/pycont-lab"  # PYCONT_ROOT in the guest: its own /tmp, never the host's
KERNEL_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
NET_MODULES = ("virtio_net",)
# What the containers' networks need in the guest (pycont.net): Debian builds them as modules.
CONTAINER_NET_MODULES = ("veth", "bridge", "sch_tbf", "sch_netem")
# Host variables the kernel in the guest keeps (the rest is the guest's own).
PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "MPLBACKEND", "MPLCONFIGDIR")
# Not JPY_PARENT_PID: ipykernel polls that pid and would exit, since the guest has no such pid.
PASS_PREFIXES = ("JUPYTER_", "IPYTHON", "PYCONT_")


@dataclass(frozen=True)
class Backend:
    """Where containers run: ``local`` (this kernel) or ``vm`` (pycont's lab VM)."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


@dataclass(frozen=True)
class LabInfo:
    """What the code in the lab VM knows about it (from the environment the launcher set)."""

    reason: str  # why the host's own kernel was not used
    accel: str  # "tcg" or "kvm", and why
    kernel: str  # the guest's kernel release
    memory: str
    cpus: int

    def label(self) -> str:
        accel = self.accel.split(":")[0]
        return f"ran in pycont's lab VM ({self.kernel}, {accel}) because {self.reason}"


def lab_info(env: Mapping[str, str] | None = None) -> LabInfo | None:
    """The lab VM this process runs in, or None on a host of its own."""
    raw = (os.environ if env is None else env).get(ENV_LAB)
    if not raw:
        return None
    try:
        return LabInfo(**json.loads(raw))
    except (ValueError, TypeError):
        return None


def forced_backend(env: Mapping[str, str] | None = None) -> str | None:
    """``PYCONT_BACKEND`` when set: local or vm; a clear error for anything else."""
    value = (os.environ if env is None else env).get(ENV_BACKEND, "").strip()
    if not value:
        return None
    if value not in BACKENDS:
        raise VMError(f"{ENV_BACKEND}={value!r}: accepted values are local and vm")
    return value


def lab_available() -> tuple[bool, str]:
    """(True, what it boots) when qemu, a cached kernel and a static busybox are all here.

    Nothing is downloaded: on Binder, ``binder/postBuild`` fetched the kernel at build time.
    """
    from pycont.vm.initramfs import find_busybox
    from pycont.vm.kernel import cached_kernels, default_cache_dir
    from pycont.vm.launch import find_qemu

    try:
        qemu = find_qemu()
        find_busybox(install=False)
    except VMError as e:
        return False, str(e)
    kernels = cached_kernels(default_cache_dir())
    if not kernels:
        return False, f"no kernel in {default_cache_dir()}: run ensure_kernel() once"
    return True, f"{os.path.basename(qemu)} with kernel {kernels[0].version}"


def choose_backend(
    env: Mapping[str, str] | None = None,
    probe_fn: Callable[[], Any] | None = None,
    available_fn: Callable[[], tuple[bool, str]] = lab_available,
) -> Backend:
    """Where this session's containers run, and why (one line a learner can read).

    Local where this user can make containers with limits (root, or rootless with a
    delegated cgroup); the lab VM where the host allows no user namespaces or no cgroup
    limits and the VM can boot; local (degraded, labelled) when neither.
    """
    env = os.environ if env is None else env
    forced = forced_backend(env)
    if forced:
        return Backend(forced, f"{ENV_BACKEND}={forced}")
    if lab_info(env):
        return Backend("local", "this is pycont's lab VM: root, cgroup v2")
    if probe_fn is None:
        from pycont.kernel.probe import probe

        probe_fn = probe
    p = probe_fn()
    if p.mode == "root":
        return Backend("local", "root on this host: namespaces and cgroup limits")
    if p.mode == "rootless" and p.cgroup_writable.ok:
        return Backend("local", "rootless with a delegated cgroup")
    if p.mode == "rootless":
        why = f"this machine gives this user no cgroup limits ({p.cgroup_writable.reason})"
    else:
        why = f"this machine allows no user namespaces ({p.user_namespaces.reason})"
    ok, what = available_fn()
    if ok:
        return Backend("vm", why)
    return Backend("local", f"{why}; no lab VM either ({what})")


def guest_connection(info: Mapping[str, Any]) -> dict[str, Any]:
    """The kernel's connection file as seen in the guest: same ports, every address."""
    if info.get("transport", "tcp") != "tcp":
        raise VMError(f"kernel transport {info.get('transport')!r}: the lab VM forwards tcp only")
    missing = [k for k in KERNEL_PORTS if not info.get(k)]
    if missing:
        raise VMError(f"connection file has no {', '.join(missing)}")
    return {**info, "ip": "0.0.0.0"}  # noqa: S104 - the guest's only other address is slirp's


def netdev_args(info: Mapping[str, Any], machine: str = "microvm") -> list[str]:
    """qemu's user-mode NIC: isolated (restrict=on), with the kernel's ports forwarded."""
    host_ip = info.get("ip") or "127.0.0.1"
    fwd = ",".join(f"hostfwd=tcp:{host_ip}:{info[k]}-{GUEST_IP}:{info[k]}" for k in KERNEL_PORTS)
    dev = "virtio-net-device" if machine == "microvm" else "virtio-net-pci"
    return ["-netdev", f"user,id=lab,restrict=on,{fwd}", "-device", f"{dev},netdev=lab"]


def guest_env(env: Mapping[str, str], info: LabInfo, host_images: str) -> dict[str, str]:
    """The kernel's environment in the guest: the host's Python settings, the lab's marks."""
    out = {k: env[k] for k in PASS_ENV if k in env}
    # this interpreter's bin first: `pycont`, `jupyter` and `python` are the launcher's own
    bindir = os.path.dirname(sys.executable)
    if bindir and bindir not in out.get("PATH", "").split(":"):
        out["PATH"] = ":".join(p for p in (bindir, out.get("PATH", "")) if p)
    out.update({k: v for k, v in env.items() if k.startswith(PASS_PREFIXES)})
    out.pop(ENV_BACKEND, None)
    out[ENV_HOST_IMAGES] = host_images  # resolve() copies an image the guest lacks from there
    out["PYCONT_ROOT"] = GUEST_STORE
    out[ENV_LAB] = json.dumps(info.__dict__)
    return out


def kernel_command(python: str, connection: Mapping[str, Any]) -> str:
    """The guest's shell lines: network up, connection file written, ipykernel started."""
    bb = "/run/vm-guest/busybox"
    conn = json.dumps(dict(connection))
    return "\n".join(
        [
            f"{bb} ip link set eth0 up && {bb} ip addr add {GUEST_IP}/24 dev eth0 "
            "|| { echo 'lab VM: no network for the kernel'; exit 125; }",
            f"{bb} ip route add default dev eth0 2>/dev/null",
            "mkdir -p /run/lab",
            f"printf '%s' {shlex.quote(conn)} >/run/lab/kernel.json",
            "echo PYCONT-VM-KERNEL",
            f"exec {shlex.quote(python)} -m ipykernel_launcher -f /run/lab/kernel.json "
            "--IPKernelApp.kernel_class=pycont.vm.coursekernel.CourseKernel",
        ]
    )


def keep_paths(paths: list[str]) -> list[str]:
    """The folders under /tmp or /run among ``paths`` (the guest has its own /tmp and /run:
    a checkout, a HOME or a venv there must be shown again), as their top folders."""
    tops = set()
    for path in paths:
        parts = os.path.abspath(path).split("/")
        if len(parts) > 2 and parts[1] in ("tmp", "run") and parts[2]:
            tops.add("/".join(parts[:3]))
    return sorted(tops)


def guest_cpus() -> int:
    """CPUs for the guest: what this process may use (affinity, cgroup CPU quota), at most 2."""
    from pycont.kernel.mounts import cgroup_layout, own_cgroup_dir

    n = len(os.sched_getaffinity(0))
    try:
        with open("/proc/self/mountinfo") as f:
            layout = cgroup_layout(f.read())
        with open("/proc/self/cgroup") as f:
            own = own_cgroup_dir(layout, f.read(), "cpu")
        if own and layout.controllers.get("cpu") == "v1":
            with open(f"{own}/cpu.cfs_quota_us") as f, open(f"{own}/cpu.cfs_period_us") as g:
                quota, period = f.read().strip(), g.read().strip()
            quota = "max" if quota == "-1" else quota
        elif own:
            with open(f"{own}/cpu.max") as f:
                quota, period = f.read().split()[:2]
        else:
            quota = "max"
        if quota != "max":
            n = min(n, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no readable quota: the affinity mask is the answer
    return max(1, min(n, 2))


def boot_lab(
    command: str,
    reason: str,
    *,
    memory: str = "1G",
    cpus: int | None = None,
    on_output: Callable[[str], None] | None = None,
    timeout: float = 30 * 24 * 3600.0,
    extra_modules: Sequence[str] = (),
    extra_args: Sequence[str] = (),
) -> VMResult:
    """Boot the lab VM, run the shell lines ``command`` in it as root, power off.

    The guest sees this process's files, cwd, HOME, Python and pycont (kept when under /tmp),
    its environment marks it as the lab (``PYCONT_LAB_VM``), its store is its own and the
    host's images are copied in on first use.
    """
    from pycont.vm.guest import run_in_guest
    from pycont.vm.kernel import cached_kernels, default_cache_dir
    from pycont.vm.qemu import choose_accel

    kernels = cached_kernels(default_cache_dir())
    if not kernels:
        raise VMError(f"no kernel in {default_cache_dir()}")
    kernel = kernels[0]
    accel = choose_accel(kernel)
    cpus = cpus or guest_cpus()
    info = LabInfo(
        reason=reason,
        accel=f"{accel.name.upper()}: {accel.reason}",
        kernel=kernel.version,
        memory=memory,
        cpus=cpus,
    )
    return run_in_guest(
        command,
        cwd=os.getcwd(),
        env=guest_env(os.environ, info, paths.images_dir()),
        hide=(),  # the host's store is shown read-only: its images are copied on first use
        kernel=kernel,
        memory=memory,
        smp=cpus,
        accel=accel,
        timeout=timeout,
        on_output=on_output,
        cgroup_leaf="/lab.slice/kernel.scope",
        # /tmp (the guest's store) on ext4: the 6.1 kernel's tmpfs has no user.* xattrs, which
        # overlay in a user namespace needs (chapter 04, rootless); a sparse file, gone after
        scratch="ext4" if _mkfs_ext4() else "tmpfs",
        keep=keep_paths([os.getcwd(), os.path.expanduser("~"), sys.prefix, _package_dir()]),
        extra_modules=(*CONTAINER_NET_MODULES, *extra_modules),
        extra_args=extra_args,
    )


def run_kernel(
    connection_file: str,
    reason: str,
    *,
    python: str | None = None,
    log: Callable[[str], None] | None = None,
) -> int | None:
    """Boot the lab VM and run an IPython kernel in it until it shuts down.

    Returns the kernel's exit code, or None when the VM never started the kernel (the caller
    then runs it here, labelled). Blocks for the kernel's whole life.
    """
    with open(connection_file) as f:
        host_conn = json.load(f)
    result = boot_lab(
        kernel_command(python or sys.executable or "python3", guest_connection(host_conn)),
        reason,
        on_output=log,
        extra_modules=NET_MODULES,
        extra_args=netdev_args(host_conn),
    )
    if "KERNEL" not in result.marks:
        if log:
            log(f"lab VM did not start the kernel (exit {result.exit_code})\n")
        return None
    return result.exit_code


class ConsoleFilter:
    """The guest's console as a command's output: boot messages and pycont's marks left out."""

    _NOISE = re.compile(r"^(PYCONT-VM-[A-Z]+( -?\d+)?|\[\s*\d+\.\d+\] .*)$")

    def __init__(self, write: Callable[[str], object]) -> None:
        self.write = write
        self.pending = ""

    def __call__(self, text: str) -> None:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if not self._NOISE.match(line):
                self.write(line + "\n")

    def flush(self) -> None:
        if self.pending and not self._NOISE.match(self.pending):
            self.write(self.pending)
        self.pending = ""


def run_command(argv: Sequence[str], reason: str, write: Callable[[str], object]) -> int:
    """``pycont lab CMD``: CMD in a fresh lab VM; its output to ``write``, its exit code back."""
    out = ConsoleFilter(write)
    result = boot_lab(shlex.join(argv), reason, on_output=out)
    out.flush()
    if result.exit_code is None:
        raise VMError("the lab VM ended without the command's exit code")
    return result.exit_code


def _mkfs_ext4() -> bool:
    return bool(shutil.which("mkfs.ext4") or os.path.exists("/sbin/mkfs.ext4"))


def _package_dir() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
