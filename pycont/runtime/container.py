"""Containers: create, start, wait, exec, stop, remove, with a Popen-like surface.

A container is a directory under ``<root>/containers/<id>`` (its config, its state, its
read/write layer, its log) and, while it runs, a process tree started by the shim helper.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import random
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import IO, TYPE_CHECKING, Any

from pycont import images, paths
from pycont import volumes as volumes_mod
from pycont.cgroups.base import Limits, Stats
from pycont.errors import (
    ContainerNotFound,
    InvalidState,
    NameConflict,
    PycontError,
    StartError,
    UsageError,
)
from pycont.namespaces import Namespace, NamespaceSet
from pycont.rootfs import RootSpec, prepare_dirs
from pycont.runtime import launcher
from pycont.runtime import state as st

if TYPE_CHECKING:
    from pycont.cgroups import Cgroup

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL
HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,61}[a-zA-Z0-9])?$")
ENV_KEY_RE = re.compile(r"^[^=\s]+$")
_ADJECTIVES = [
    "brave",
    "calm",
    "eager",
    "fond",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "merry",
    "nifty",
    "quirky",
    "sharp",
    "tender",
]
_NAMES = [
    "curie",
    "dijkstra",
    "hopper",
    "knuth",
    "lamport",
    "liskov",
    "lovelace",
    "ritchie",
    "thompson",
    "torvalds",
    "turing",
]

Narrate = Callable[[str], None]


@dataclass(frozen=True)
class ExecResult:
    """What ``Container.exec`` returns when it waits: the exit code and the output."""

    exit_code: int
    output: str


def _random_name(taken: set[str]) -> str:
    while True:
        name = f"{random.choice(_ADJECTIVES)}_{random.choice(_NAMES)}"
        if name not in taken:
            return name
        name += f"{random.randint(0, 99)}"
        if name not in taken:
            return name


def _ids_and_names() -> dict[str, str]:
    """id -> name for every container in the store."""
    out = {}
    base = paths.containers_dir()
    for cid in os.listdir(base) if os.path.isdir(base) else []:
        try:
            out[cid] = st.read_json(os.path.join(base, cid, "config.json"))["name"]
        except (OSError, ValueError, KeyError):
            continue
    return out


def _parse_env(items: Sequence[str]) -> list[str]:
    env = []
    for item in items:
        key, eq, value = item.partition("=")
        if not key or not ENV_KEY_RE.fullmatch(key):
            raise UsageError(f"invalid environment variable {item!r}: expected KEY=VALUE")
        if not eq:  # docker: "-e KEY" passes the caller's value, or nothing when unset
            if key not in os.environ:
                continue
            value = os.environ[key]
        env.append(f"{key}={value}")
    return env


def _merge_env(*groups: Sequence[str]) -> list[str]:
    merged: dict[str, str] = {}
    for group in groups:
        for item in group:
            k, _, v = item.partition("=")
            merged[k] = v
    return [f"{k}={v}" for k, v in merged.items()]


class Container:
    """One container. Get one from :func:`run`, :func:`create` or :func:`get`."""

    def __init__(self, cid: str) -> None:
        self.id = cid
        self.dir = st.container_dir(cid)
        self._config: st.ContainerConfig | None = None
        self._last: st.ContainerState | None = None
        self._proc: launcher.Monitor | None = None
        self._how: str | None = None  # how to start the shim: see launcher.launch
        self.stdin: IO[bytes] | None = None
        self.stdout: IO[bytes] | None = None
        self.stderr: IO[bytes] | None = None
        self.output: str = ""

    # -- facts ---------------------------------------------------------------------------
    @property
    def config(self) -> st.ContainerConfig:
        if self._config is None:
            try:
                self._config = st.load_config(self.dir)
            except FileNotFoundError:
                raise ContainerNotFound(f"no such container: {self.id}") from None
        return self._config

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def state(self) -> st.ContainerState:
        """The recorded state, corrected if its helper died without recording the end."""
        try:
            rec = st.load_state(self.dir)
        except FileNotFoundError:
            if self._proc is not None and self._proc.poll() is not None and self._last:
                # Removed by --rm when it exited: its shim's exit code is the container's.
                self._last.status = st.Status.EXITED.value
                self._last.exit_code = self._proc.returncode
                return self._last
            raise ContainerNotFound(f"no such container: {self.id} (removed)") from None
        self._last = rec
        if rec.status in (st.Status.RUNNING.value, st.Status.PAUSED.value) and not st.alive(
            rec.pid, rec.pid_start
        ):
            # A running container whose process is gone: its shim was killed (SIGKILL) before
            # it could record the end; PR_SET_PDEATHSIG took the container down with it.
            with contextlib.suppress(FileNotFoundError):
                rec = st.load_state(self.dir)  # the shim may have just written it
            if rec.status != st.Status.EXITED.value:
                rec.status = st.Status.EXITED.value
                rec.exit_code = 137 if rec.exit_code is None else rec.exit_code
                rec.error = rec.error or "the pycont shim died; the container was killed"
                rec.finished_at = rec.finished_at or time.time()
        return rec

    @property
    def status(self) -> str:
        return self.state().status

    @property
    def pid(self) -> int:
        """Host pid of the container's first process (PID 1 inside), 0 when not running."""
        rec = self.state()
        return rec.pid if rec.status in (st.Status.RUNNING.value, st.Status.PAUSED.value) else 0

    @property
    def exit_code(self) -> int | None:
        return self.state().exit_code

    def __repr__(self) -> str:
        try:
            return f"<Container {self.name} {self.short_id} {self.status}>"
        except ContainerNotFound:
            return f"<Container {self.short_id} removed>"

    # -- lifecycle -----------------------------------------------------------------------
    def start(
        self,
        stdin: Any = None,
        stdout: Any = None,
        stderr: Any = None,
        narrate: bool | Narrate = False,
    ) -> Container:
        """Start the container. Output goes to the log when detached, else where given."""
        rec = self.state()
        if not st.Status(rec.status).can_start():
            raise InvalidState(f"container {self.name} is {rec.status}: cannot start it again")
        cfg = self.config
        log = None
        if cfg.detach:
            log = open(os.path.join(self.dir, "ctr.log"), "ab")  # noqa: SIM115
            stdin, stdout, stderr = DEVNULL, log, STDOUT
        elif not cfg.interactive and stdin is None:
            stdin = DEVNULL
        try:
            self._proc = launcher.launch(
                "run",
                [self.dir],
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                detach=cfg.detach,
                how=self._how,
            )
        finally:
            if log:
                log.close()
        self.stdin, self.stdout, self.stderr = (
            self._proc.stdin,
            self._proc.stdout,
            self._proc.stderr,
        )
        say: Narrate | None = narrate if callable(narrate) else (print if narrate else None)
        self._proc.handshake(say)
        return self

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the container to exit; return its exit code (128+N if killed by signal N)."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"container {self.name} still running after {timeout}s"
                ) from None
        else:
            rec = self.state()
            if rec.status in (st.Status.RUNNING.value, st.Status.PAUSED.value):
                _wait_pid_exit(rec.monitor_pid, timeout, self.name)
        rec = self.state()
        if rec.exit_code is None:
            raise InvalidState(f"container {self.name} is {rec.status}: it has not run")
        return rec.exit_code

    def kill(self, sig: int = signal.SIGKILL) -> None:
        rec = self.state()
        if not st.Status(rec.status).can_kill():
            raise InvalidState(f"container {self.name} is not running (status: {rec.status})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, sig)

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds, as docker stop does."""
        if not st.Status(self.state().status).can_kill():
            return self.exit_code
        with contextlib.suppress(InvalidState):
            self.kill(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except TimeoutError:
            with contextlib.suppress(InvalidState):
                self.kill(signal.SIGKILL)
            return self.wait(30)

    def remove(self, force: bool = False) -> None:
        """Remove the container and everything it made; ``force`` kills it first."""
        with st.store_lock():
            try:
                rec = self.state()
            except ContainerNotFound:
                return
            if not st.Status(rec.status).can_remove(force):
                raise InvalidState(
                    f"cannot remove container {self.name}: it is {rec.status}; "
                    "stop it first or use force (rm -f)"
                )
            if rec.status in (st.Status.RUNNING.value, st.Status.PAUSED.value):
                if self.config.cgroup:
                    # Freeze, kill every process, thaw: a fork bomb cannot outrun it.
                    with contextlib.suppress(PycontError, OSError):
                        self.cgroup().kill_all()
                with contextlib.suppress(ProcessLookupError):
                    os.kill(rec.pid, signal.SIGKILL)
                # Wait for the shim: it records the exit, and the mounts go with the namespace.
                if self._proc is not None:
                    self._proc.wait(30)
                else:
                    _wait_pid_exit(rec.monitor_pid, 30, self.name)
            if rec.pid:
                # If its shim was killed, its PID 1 died with it (PR_SET_PDEATHSIG) but stays
                # a zombie until the host's init reaps it. Give that a moment.
                _wait_until(lambda: _gone(rec.pid, rec.pid_start), 5)
            if self.config.cgroup:
                # Normally the shim removed it; not if the shim itself was killed.
                with contextlib.suppress(PycontError, OSError):
                    cg = self.cgroup()
                    if cg.exists():
                        cg.kill_all()
                        cg.destroy()
            st.remove_tree(self.dir)

    # -- inside ---------------------------------------------------------------------------
    def exec(
        self,
        command: Sequence[str],
        *,
        env: Sequence[str] = (),
        workdir: str | None = None,
        stdin: Any = DEVNULL,
        stdout: Any = PIPE,
        stderr: Any = STDOUT,
        wait: bool = True,
    ) -> ExecResult | launcher.Monitor:
        """Run ``command`` in the running container's namespaces (docker exec).

        Waits and returns an :class:`ExecResult` by default; ``wait=False`` returns the
        helper's :class:`~pycont.runtime.launcher.Monitor`, whose ``wait()`` is the command's."""
        if not command:
            raise UsageError("exec: no command given")
        rec = self.state()
        if not st.Status(rec.status).can_exec():
            raise InvalidState(f"container {self.name} is not running (status: {rec.status})")
        if workdir is not None and not workdir.startswith("/"):
            raise UsageError(f"invalid working directory {workdir!r}: it must be an absolute path")
        spec = json.dumps({"args": list(command), "env": _parse_env(env), "workdir": workdir})
        proc = launcher.launch(
            "exec", [self.dir, spec], stdin=stdin, stdout=stdout, stderr=stderr, how=self._how
        )
        proc.handshake()
        if not wait:
            return proc
        out = proc.stdout.read() if proc.stdout is not None else b""
        if proc.stdout is not None:
            proc.stdout.close()
        return ExecResult(proc.wait(), out.decode(errors="replace"))

    def logs(self, follow: bool = False) -> Iterator[str]:
        """The output of a detached container, line by line; ``follow`` waits for more."""
        path = os.path.join(self.dir, "ctr.log")
        if not os.path.exists(path):
            return
        with open(path, "rb") as f:
            while True:
                line = f.readline()
                if line.endswith(b"\n") or (line and not follow):
                    yield line.decode(errors="replace")
                    continue
                if not follow or self.status not in ("running", "paused"):
                    rest = f.read()
                    if line + rest:
                        yield (line + rest).decode(errors="replace")
                    return
                f.seek(-len(line), os.SEEK_CUR)
                time.sleep(0.1)

    def processes(self) -> list[dict[str, Any]]:
        """The container's processes as the host sees them: host pid, pid inside, command."""
        rec = self.state()
        if rec.status != st.Status.RUNNING.value:
            return []
        target = os.stat(f"/proc/{rec.pid}/ns/pid").st_ino
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}/ns/pid").st_ino != target:
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                from pycont.namespaces import nspid

                out.append({"pid": int(entry), "nspid": nspid(int(entry))[-1], "cmd": cmd})
            except OSError:
                continue
        return sorted(out, key=lambda p: p["nspid"])

    # -- resources (cgroups) ------------------------------------------------------------
    def cgroup(self) -> Cgroup:
        """The container's cgroup (pycont.cgroups), or UsageError saying why it has none."""
        from pycont import cgroups

        cfg = self.config
        if not cfg.cgroup:
            raise UsageError(f"container {cfg.name} has no cgroup: {cfg.cgroup_note}")
        return cgroups.for_container(cfg.id)

    def limits(self) -> Limits:
        return Limits.from_options(**self.config.limits)

    def stats(self) -> Stats:
        """One reading of the container's cgroup counters (CPU, memory, pids, I/O)."""
        rec = self.state()
        if rec.status not in (st.Status.RUNNING.value, st.Status.PAUSED.value):
            raise InvalidState(f"container {self.name} is not running (status: {rec.status})")
        return self.cgroup().stats()

    def net_io(self) -> tuple[int, int]:
        """Bytes received and sent by the container's network devices but lo (proc(5): the
        /proc/<pid>/net/dev of a process shows its network namespace)."""
        rx = tx = 0
        with contextlib.suppress(OSError), open(f"/proc/{self.pid}/net/dev") as f:
            for line in f.readlines()[2:]:
                name, _, data = line.partition(":")
                if name.strip() != "lo":
                    fields = data.split()
                    rx, tx = rx + int(fields[0]), tx + int(fields[8])
        return rx, tx

    def update(self, **options: Any) -> Limits:
        """Change limits of a running container live (docker update); returns the new ones."""
        new = _parse_limits(options, update=True)
        if new.is_empty():
            raise UsageError("update: give at least one limit, e.g. memory='128m' or cpus=1")
        rec = self.state()
        if rec.status in (st.Status.RUNNING.value, st.Status.PAUSED.value):
            self.cgroup().apply(new)
        merged = self.limits().merged(new)
        cfg = self.config
        cfg.limits = merged.as_options()
        st.save_config(cfg)
        return merged

    def pause(self) -> None:
        """Freeze every process of the container (the freezer: cgroup.freeze / freezer.state)."""
        with st.modify_state(self.dir) as rec:
            if rec.status != st.Status.RUNNING.value:
                raise InvalidState(
                    f"container {self.name} is {rec.status}: only a running one pauses"
                )
            self.cgroup().freeze()
            rec.status = st.Status.PAUSED.value

    def unpause(self) -> None:
        with st.modify_state(self.dir) as rec:
            if rec.status != st.Status.PAUSED.value:
                raise InvalidState(f"container {self.name} is {rec.status}, not paused")
            self.cgroup().thaw()
            rec.status = st.Status.RUNNING.value

    # -- layers ------------------------------------------------------------------------------
    @property
    def userxattr(self) -> bool:
        """Its overlay was mounted with userxattr: it has its own user namespace."""
        return self.config.namespaces.get("user", "private") != "host"

    def storage_driver(self) -> str:
        """``overlay``, or ``vfs: <why>`` when the layers had to be copied."""
        try:
            with open(os.path.join(self.dir, "driver")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return self.config.storage_driver

    def diff(self) -> list[tuple[str, str]]:
        """docker diff: (A|C|D, path) for what the container changed in its read/write layer."""
        from pycont import overlay

        cfg = self.config
        if self.storage_driver().startswith("vfs"):
            merged = os.path.join(self.dir, "merged")
            stack = overlay.CopyStack(tuple(cfg.layers), merged, self.userxattr)
            return [(ch.kind, ch.path) for ch in stack.changes()]
        upper = os.path.join(self.dir, "upper")
        return [
            (ch.kind, ch.path)
            for ch in overlay.changes(upper, cfg.layers, userxattr=self.userxattr)
        ]

    def commit(
        self,
        reference: str | None = None,
        *,
        message: str = "",
        author: str = "",
        changes: Sequence[str] = (),
        pause: bool = True,
    ) -> str:
        """docker commit: the read/write layer becomes a new image layer on top of the
        container's image, sharing every layer below. Returns the new image id."""
        from pycont.images import Store

        cfg = self.config
        if self.storage_driver().startswith("vfs"):
            raise UsageError(
                f"commit {cfg.name}: needs the overlay driver (its read/write layer); this "
                f"container's layers were copied ({self.storage_driver()})"
            )
        paused_here = False
        if pause and self.status == st.Status.RUNNING.value and cfg.cgroup:
            self.pause()  # a consistent snapshot: nothing writes while the layer is read
            paused_here = True
        try:
            return Store().commit_layer(
                os.path.join(self.dir, "upper"),
                cfg.image_id or cfg.image,
                reference,
                message=message,
                changes=changes,
                created_by=" ".join(cfg.args),
                author=author,
                userxattr=self.userxattr,
            )
        finally:
            if paused_here:
                self.unpause()

    def inspect(self) -> dict[str, Any]:
        """docker inspect's fields that pycont knows."""
        cfg, rec = self.config, self.state()
        spec = RootSpec(tuple(cfg.layers), self.dir)
        modes = cfg.namespaces
        return {
            "Id": self.id,
            "Name": "/" + cfg.name,
            "Created": _iso(rec.created),
            "Path": cfg.args[0],
            "Args": cfg.args[1:],
            "State": {
                "Status": rec.status,
                "Running": rec.status == "running",
                "Paused": rec.status == "paused",
                "OOMKilled": rec.oom_killed,
                "Pid": rec.pid if rec.status in ("running", "paused") else 0,
                "ExitCode": rec.exit_code if rec.exit_code is not None else 0,
                "Error": rec.error,
                "StartedAt": _iso(rec.started_at),
                "FinishedAt": _iso(rec.finished_at),
            },
            "Image": cfg.image_id or cfg.image,
            "LogPath": os.path.join(self.dir, "ctr.log") if cfg.detach else "",
            "Mounts": [
                {
                    "Type": m["kind"],
                    "Name": m["source"] if m["kind"] == "volume" else "",
                    "Source": m["host"],
                    "Destination": m["target"],
                    "RW": not m["readonly"],
                }
                for m in cfg.mounts
            ],
            "HostConfig": {
                **_host_config_limits(cfg.limits),
                "AutoRemove": cfg.auto_remove,
                "PidMode": _mode(modes, "pid"),
                "NetworkMode": "host" if modes.get("net") == "host" else "none",
                "IpcMode": _mode(modes, "ipc"),
                "UTSMode": _mode(modes, "uts"),
                "UsernsMode": _mode(modes, "user"),
                "CgroupnsMode": modes.get("cgroup", "private"),
            },
            "Config": {
                "Hostname": cfg.hostname,
                "Env": cfg.env,
                "Cmd": cfg.args,
                "WorkingDir": cfg.workdir,
                "Image": cfg.image,
                "AttachStdin": cfg.interactive,
            },
            "GraphDriver": {
                "Name": self.storage_driver(),
                "Data": {
                    "LowerDir": ":".join(cfg.layers),
                    "UpperDir": spec.upper,
                    "WorkDir": spec.work,
                    "MergedDir": spec.merged,
                },
            },
            "Pycont": {
                "Rootless": cfg.rootless,
                "UidMap": cfg.uid_map,
                "GidMap": cfg.gid_map,
                "Cgroup": self.cgroup().paths() if cfg.cgroup else {},
                "CgroupNote": cfg.cgroup_note,
            },
        }

    def _repr_html_(self) -> str:
        from pycont.display import container_html

        return container_html(self)


def _host_config_limits(options: dict[str, Any]) -> dict[str, Any]:
    """docker inspect's HostConfig resource fields (0 = not set, as docker prints them)."""
    lim = Limits.from_options(**options)
    return {
        "Memory": lim.memory or 0,
        "MemorySwap": lim.memory_swap or 0,
        "MemoryReservation": lim.memory_reservation or 0,
        "NanoCpus": lim.nano_cpus or 0,
        "CpuShares": lim.cpu_shares or 0,
        "CpusetCpus": lim.cpuset_cpus or "",
        "PidsLimit": lim.pids_limit,
        "BlkioWeight": lim.blkio_weight or 0,
        "BlkioDeviceReadBps": [{"Path": d.path, "Rate": d.rate} for d in lim.device_read_bps],
        "BlkioDeviceWriteBps": [{"Path": d.path, "Rate": d.rate} for d in lim.device_write_bps],
    }


def _mode(modes: dict[str, str], key: str) -> str:
    return "host" if modes.get(key) == "host" else "private"


def _iso(ts: float) -> str:
    if not ts:
        return "0001-01-01T00:00:00Z"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat().replace("+00:00", "Z")


def _gone(pid: int, start: int) -> bool:
    """No process has this pid and start time any more, not even a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19]) != start
    except (OSError, IndexError, ValueError):
        return True


def _wait_until(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)


def _wait_pid_exit(pid: int, timeout: float | None, name: str) -> None:
    """Wait for a process that is not our child, through a pidfd (pidfd_open(2))."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise TimeoutError(f"container {name} still running after {timeout}s")
    finally:
        os.close(fd)


# -- module functions ------------------------------------------------------------------------
def _containers_using(image_id: str) -> list[str]:
    """Containers made from an image: rmi refuses to remove it while any exist."""
    out = []
    for c in containers(all=True):
        with contextlib.suppress(PycontError):
            if c.config.image_id == image_id:
                out.append(c.name)
    return out


images.set_in_use_hook(_containers_using)


def create(
    image: str,
    command: Sequence[str] | None = None,
    *,
    name: str | None = None,
    hostname: str | None = None,
    env: Sequence[str] = (),
    workdir: str | None = None,
    detach: bool = False,
    interactive: bool = False,
    rm: bool = False,
    pid: str = "private",
    network: str = "private",
    ipc: str = "private",
    uts: str = "private",
    userns: str = "private",
    cgroupns: str = "private",
    narrate: bool = False,
    volumes: Sequence[str] = (),
    **limits: Any,
) -> Container:
    """Create a container (docker create): checks everything, starts nothing.

    ``limits`` are docker's resource flags, as strings or numbers: ``memory="64m"``,
    ``memory_swap``, ``memory_reservation``, ``cpus=0.5``, ``cpu_shares``, ``cpuset_cpus``,
    ``pids_limit``, ``device_read_bps=["/dev/vda:1mb"]``, ``device_write_bps``,
    ``blkio_weight``. ``volumes`` are docker's ``-v`` specs: ``["data:/data", "/src:/s:ro"]``."""
    if name is not None:
        st.validate_name(name)
    if hostname is not None and not HOSTNAME_RE.fullmatch(hostname):
        raise UsageError(
            f"invalid hostname {hostname!r}: letters, digits, '-' and '.', at most 63 characters"
        )
    if workdir is not None and not workdir.startswith("/"):
        raise UsageError(f"invalid working directory {workdir!r}: it must be an absolute path")
    nsset = NamespaceSet.from_modes(
        {"pid": pid, "net": network, "ipc": ipc, "uts": uts, "user": userns, "cgroup": cgroupns}
    )
    mounts = [volumes_mod.parse(v) for v in volumes]
    targets = [m.target for m in mounts]
    if len(set(targets)) != len(targets):
        raise UsageError(f"duplicate mount point in {list(volumes)}: each path once")
    lim = _parse_limits(limits)
    use_cgroup, cgroup_note = _cgroup_for(lim)
    img = images.resolve(image)
    # docker: the image's ENTRYPOINT, then the command (or the image's CMD).
    args = list(img.entrypoint) + (list(command) if command else list(img.cmd))
    if not args or not args[0]:
        raise UsageError(f"no command specified: give one, image {img.name} has no default")
    user_env = _parse_env(env)
    cid = os.urandom(32).hex()
    rootless = os.geteuid() != 0
    private_user = Namespace.USER not in nsset.shared
    if rootless and not private_user:
        raise UsageError("--userns host needs root: without it, namespaces need a user namespace")
    if rootless:
        # user_namespaces(7): without privilege, one line mapping our own uid and gid.
        uid_map, gid_map = [[0, os.geteuid(), 1]], [[0, os.getegid(), 1]]
    else:
        # As root: the identity map. A new user namespace with the same ids, so files keep
        # their owners while the container's root holds capabilities only inside it.
        uid_map, gid_map = [[0, 0, 4294967295]], [[0, 0, 4294967295]]
    host = hostname or cid[:12]
    cfg = st.ContainerConfig(
        id=cid,
        name="",
        image=img.name,
        layers=list(img.layers),
        args=args,
        env=_merge_env(img.env, [f"HOSTNAME={host}", "HOME=/root"], user_env),
        workdir=workdir or img.workdir,
        hostname=host,
        namespaces=nsset.modes(),
        detach=detach,
        interactive=interactive,
        auto_remove=rm,
        rootless=rootless,
        uid_map=uid_map,
        gid_map=gid_map,
        narrate=bool(narrate),
        limits=lim.as_options(),
        cgroup=use_cgroup,
        cgroup_note=cgroup_note,
        image_id=img.id,
        storage_driver=_storage_driver(),
        mounts=[{**asdict(m), "host": m.host_path()} for m in mounts],
    )
    cdir = st.container_dir(cid)
    with st.store_lock():
        taken = set(_ids_and_names().values())
        if name is not None and name in taken:
            raise NameConflict(
                f'the container name "{name}" is already in use: remove that container '
                "or choose another name"
            )
        cfg.name = name or _random_name(taken)
        try:
            for m in mounts:
                if m.kind == "volume":
                    volumes_mod.create(m.source)  # docker makes a named volume on first use
            os.makedirs(cdir, mode=0o711)
            prepare_dirs(RootSpec(tuple(cfg.layers), cdir))
            st.save_config(cfg)
            st.save_state(cdir, st.ContainerState())
        except BaseException:
            st.remove_tree(cdir)
            raise
    return Container(cid)


LIMIT_OPTIONS = (
    "memory",
    "memory_swap",
    "memory_reservation",
    "cpus",
    "cpu_shares",
    "cpuset_cpus",
    "pids_limit",
    "device_read_bps",
    "device_write_bps",
    "blkio_weight",
)


def _parse_limits(options: dict[str, Any], update: bool = False) -> Limits:
    unknown = sorted(set(options) - set(LIMIT_OPTIONS))
    if unknown:
        raise UsageError(
            f"unknown option {unknown[0]!r}: accepted limits are {', '.join(LIMIT_OPTIONS)}"
        )
    given = {k: v for k, v in options.items() if v is not None and v != []}
    return Limits.from_options(update=update, **given)


def _storage_driver() -> str:
    driver = os.environ.get("PYCONT_STORAGE_DRIVER", "overlay")
    if driver not in ("overlay", "vfs"):
        raise UsageError(f"invalid PYCONT_STORAGE_DRIVER {driver!r}: overlay or vfs")
    return driver


def _cgroup_for(lim: Limits) -> tuple[bool, str]:
    """Does the container get a cgroup? As root yes (limits, stats, clean kills); otherwise
    only where one can be created (delegation). Limits asked for without one are refused."""
    from pycont import cgroups

    if os.geteuid() == 0 and cgroups.detect() != "none":
        return True, ""
    answer = cgroups.available()
    if answer.ok:
        return True, ""
    if not lim.is_empty():
        raise UsageError(
            f"resource limits ({', '.join(lim.describe())}) need a cgroup: {answer.reason}"
        )
    return False, answer.reason


def run(
    image: str,
    command: Sequence[str] | None = None,
    *,
    detach: bool = False,
    stdin: Any = None,
    stdout: Any = PIPE,
    stderr: Any = STDOUT,
    narrate: bool | Narrate = False,
    timeout: float | None = None,
    **options: Any,
) -> Container:
    """Create and start a container (docker run).

    ``detach=True`` returns the running container at once (output in :meth:`Container.logs`).
    Otherwise it waits: the output is in ``.output`` and the code in ``.exit_code`` (as with
    subprocess.run). ``stdout=None`` passes the output through instead of capturing it."""
    c = create(image, command, detach=detach, narrate=bool(narrate), **options)
    try:
        c.start(stdin=stdin, stdout=None if detach else stdout, stderr=stderr, narrate=narrate)
    except StartError:
        raise  # recorded as exited with its code, as docker keeps it (removed when rm=True)
    except BaseException:
        with contextlib.suppress(ContainerNotFound):
            c.remove(force=True)
        raise
    if detach:
        return c
    if c._proc is not None and c._proc.stdout is not None:
        c.output = c._proc.stdout.read().decode(errors="replace")
        c._proc.stdout.close()
    c.wait(timeout)
    return c


def get(name_or_id: str) -> Container:
    """The container with that name, id or unique id prefix."""
    if not name_or_id:
        raise UsageError("no container name or id given")
    table = _ids_and_names()
    for cid, name in table.items():
        if name == name_or_id or cid == name_or_id:
            return Container(cid)
    matches = [cid for cid in table if cid.startswith(name_or_id)]
    if len(matches) == 1:
        return Container(matches[0])
    if len(matches) > 1:
        raise UsageError(f"ambiguous container id prefix {name_or_id!r}: matches {len(matches)}")
    raise ContainerNotFound(f"no such container: {name_or_id}")


def containers(all: bool = False) -> list[Container]:
    """Running containers (docker ps), or every container with ``all=True``."""
    out = []
    for cid in _ids_and_names():
        c = Container(cid)
        try:
            if all or c.status in ("running", "paused"):
                out.append(c)
        except ContainerNotFound:
            continue
    return sorted(out, key=lambda c: c.state().created, reverse=True)


def config_dict(c: Container) -> dict[str, Any]:
    return asdict(c.config)
