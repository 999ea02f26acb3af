"""A container, with a Popen-like surface: start, wait, kill, exec, logs, stop, remove.

A container is a directory under ``<root>/containers/<id>`` (its config, its state, its
read/write layer, its log) and, while it runs, a process tree started by the shim helper.
Creating one is :mod:`pycont.runtime.api`'s job; :mod:`pycont.runtime.container` is the facade.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from pycont import failpoints, procfs
from pycont.errors import ContainerNotFound, InvalidState, UsageError
from pycont.net.ports import PortBinding
from pycont.runtime import launcher, netsetup, shimlock, users
from pycont.runtime import state as st
from pycont.runtime.output import read_capped
from pycont.runtime.resources import LIVE, Resources
from pycont.runtime.rwlayer import ReadWriteLayer
from pycont.runtime.spec import parse_env, validate_workdir
from pycont.runtime.state import Status

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL

Narrate = Callable[[str], None]
STOP_GRACE = 30.0  # s that stop waits for the exit once SIGKILL is sent


@dataclass(frozen=True)
class ExecResult:
    """What ``Container.exec`` returns when it waits: the exit code and the output."""

    exit_code: int
    output: str


class Container(Resources, ReadWriteLayer):
    """One container. Get one from :func:`run`, :func:`create` or :func:`get`.

    Its cgroup side (stats, update, pause) is :class:`~.resources.Resources`; its read/write
    layer (diff, commit) :class:`~.rwlayer.ReadWriteLayer`."""

    def __init__(self, cid: str) -> None:
        self.id = cid
        self.dir = st.container_dir(cid)
        self._config: st.ContainerConfig | None = None
        self._last: st.ContainerState | None = None
        self._proc: launcher.ShimHandle | None = None
        self._how: str | None = None  # how to start the shim by default: see launcher.launch
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
                if not os.path.isdir(self.dir):
                    raise ContainerNotFound(f"no such container: {self.id}") from None
                raise InvalidState(self._dead("config.json is missing")) from None
            except st.UNREADABLE as err:
                raise InvalidState(self._dead(f"config.json cannot be read: {err}")) from err
        return self._config

    def _dead(self, reason: str) -> str:
        return f"container {self.short_id} is dead ({reason}): remove it with rm -f"

    @property
    def name(self) -> str:
        """Its name; "" for a dead container whose config cannot be read (found by id)."""
        try:
            return self.config.name
        except InvalidState:
            return ""

    @property
    def who(self) -> str:
        """The container in a message: its name, or its short id when it has none (dead)."""
        return self.name or self.short_id

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def shim(self) -> launcher.ShimHandle | None:
        """The handle on the shim that this object started (by :meth:`start`), else None:
        its ``pid``, and ``wait()`` for the container's exit code."""
        return self._proc

    def state(self) -> st.ContainerState:
        """The recorded state, repaired if its shim died without recording the end; status
        dead, with the reason in ``error``, when its config or state cannot be read."""
        try:
            rec = st.reconcile(self.dir)
            if rec.status is Status.CREATED and shimlock.reap(self.dir):
                rec = st.load_state(self.dir)  # its shim died, its processes did not: killed
            if self._config is None:
                self.config  # noqa: B018 - loads it once: a container without one is dead
        except InvalidState:
            return st.dead_state(self.dir, st.damage(self.dir) or "config.json cannot be read")
        except st.UNREADABLE as err:
            if os.path.lexists(self.dir):
                return st.dead_state(self.dir, st.damage(self.dir) or f"state.json: {err}")
            if not isinstance(err, FileNotFoundError):
                raise
            last, shim = self._last, self._proc
            if shim is not None and shim.poll() is not None and last is not None:
                # Removed by --rm when it exited: its shim's exit code is the container's.
                if last.status is not Status.EXITED:
                    name = self._config.name if self._config else self.short_id
                    last = st.advanced(
                        last,
                        Status.EXITED,
                        name,
                        exit_code=shim.returncode,
                        oom_killed=shim.oom_killed,
                    )
                    self._last = last
                return last
            raise ContainerNotFound(f"no such container: {self.id} (removed)") from None
        rec = self._kernel_truth(rec)  # the freezer says running or paused (resources.py)
        self._last = rec
        return rec

    @property
    def status(self) -> str:
        return self.state().status

    @property
    def pid(self) -> int:
        """Host pid of the container's first process (PID 1 inside), 0 when not running."""
        rec = self.state()
        return rec.pid if rec.status in LIVE else 0

    @property
    def exit_code(self) -> int | None:
        return self.state().exit_code

    def __repr__(self) -> str:
        try:
            return f"<Container {self.name or '?'} {self.short_id} {self.status}>"
        except ContainerNotFound:
            return f"<Container {self.short_id} removed>"

    # -- lifecycle -----------------------------------------------------------------------
    def start(
        self,
        stdin: Any = None,
        stdout: Any = None,
        stderr: Any = None,
        narrate: bool | Narrate = False,
        via: str | None = None,
    ) -> Container:
        """Start the container (docker start). Output goes to the log when detached, else
        where given (Popen's stdin/stdout/stderr). Returns once its command runs; raises
        StartError (CommandNotFound...) if it could not start.

        An exited container starts again with the same config on the same read/write layer
        (what its last run wrote is still there); its exit code, OOM kill and error are reset.
        ``via``: how to start the shim, "spawn", "forkserver" or "fork" (see
        :func:`pycont.runtime.launcher.launch`); "fork" suits a fresh single-threaded caller
        such as the CLI."""
        rec = self.state()
        if (
            rec.status is Status.EXITED
            and rec.shim_start
            and procfs.alive(rec.shim_pid, rec.shim_start)
        ):
            # its monitor's finish step is still recording the last run and releasing its cgroup
            _wait_pid_exit(rec.shim_pid, 30, self.name)
            rec = self.state()
        if not rec.status.can_start():
            raise InvalidState(f"container {self.who} is {rec.status}: cannot start it")
        if rec.status is Status.EXITED:
            st.transition(
                self.dir,
                Status.CREATED,
                pid=0,
                pid_start=0,
                shim_pid=0,
                shim_start=0,
                started_at=0.0,
                finished_at=0.0,
                exit_code=None,
                oom_killed=False,
                memory_peak=None,
                error="",
            )
        cfg = self.config
        log = None
        if cfg.detach:
            log = open(os.path.join(self.dir, "ctr.log"), "ab")  # noqa: SIM115
            stdin, stdout, stderr = DEVNULL, log, STDOUT
        elif not cfg.interactive and stdin is None:
            stdin = DEVNULL
        try:
            proc = launcher.launch(
                "run",
                [self.dir],
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                detach=cfg.detach,
                via=via or self._how,
            )
        finally:
            if log:
                log.close()
        self._proc = proc
        self.stdin, self.stdout, self.stderr = proc.stdin, proc.stdout, proc.stderr
        say: Narrate | None = narrate if callable(narrate) else (print if narrate else None)
        try:
            proc.handshake(say)
        except Exception:
            if proc.ended_early:
                shimlock.undo_start(self.dir)
            raise
        return self

    def restart(self, timeout: float = 10, via: str | None = None) -> Container:
        """docker restart: :meth:`stop` (SIGTERM, SIGKILL after ``timeout`` s), then
        :meth:`start` again on the same read/write layer. A created container just starts."""
        self.stop(timeout)
        return self.start(via=via)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the container to exit; return its exit code (128+N if killed by signal N)."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except TimeoutError:
                raise TimeoutError(f"container {self.who} still running after {timeout}s") from None
        else:
            rec = self.state()
            if rec.status in LIVE:
                _wait_pid_exit(rec.shim_pid, timeout, self.name)
        rec = self.state()
        if procfs.alive(rec.shim_pid, rec.shim_start):
            # A detached container's monitor (pycont.runtime.mon) is recording its end, or a
            # new one adopted it after ours was killed: wait for that one.
            _wait_pid_exit(rec.shim_pid, timeout, self.name)
            rec = self.state()
        if rec.exit_code is None:
            raise InvalidState(f"container {self.who} is {rec.status}: it has not run")
        return rec.exit_code

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the container's PID 1; SIGTERM and SIGKILL thaw a paused container
        (as docker kill does), any other signal stays pending until it is unpaused."""
        self._signal(sig, "kill.signalled")

    def _signal(self, sig: int, step: str) -> None:
        rec = self.state()
        if not rec.status.can_kill():
            raise InvalidState(f"container {self.who} is not running (status: {rec.status})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, sig)
        failpoints.hit(step)
        self._thaw_to_end(sig)

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds, as docker stop does; a paused
        container is thawed after the signal, so it takes it."""
        if not self.state().status.can_kill():
            return self.exit_code
        with contextlib.suppress(InvalidState):
            self._signal(signal.SIGTERM, "stop.signalled")
        try:
            return self.wait(timeout)
        except TimeoutError:
            with contextlib.suppress(InvalidState):
                self._signal(signal.SIGKILL, "stop.killed")
        try:
            return self.wait(STOP_GRACE)
        except TimeoutError:
            # SIGKILL was sent and the container thawed: only a task stuck in the kernel
            # (state D, e.g. on a dead NFS server) can outlast it.
            raise InvalidState(
                f"stop {self.who}: still running {STOP_GRACE:g} s after SIGKILL"
            ) from None

    def remove(self, force: bool = False) -> None:
        """Remove the container and everything it made; ``force`` kills it first. A dead
        container (its record unreadable) is removed too: see :mod:`.removal`."""
        from pycont.runtime import removal

        removal.remove(self, force)

    # -- inside ---------------------------------------------------------------------------
    def exec(
        self,
        command: Sequence[str],
        *,
        env: Sequence[str] = (),
        workdir: str | None = None,
        user: str | None = None,
        stdin: Any = DEVNULL,
        stdout: Any = PIPE,
        stderr: Any = STDOUT,
        wait: bool = True,
        via: str | None = None,
    ) -> ExecResult | launcher.ShimHandle:
        """Run ``command`` in the running container's namespaces (docker exec).

        Waits and returns an :class:`ExecResult` by default; ``wait=False`` returns the
        helper's :class:`~pycont.runtime.launcher.ShimHandle`, whose ``wait()`` is the
        command's. ``user``: docker exec's ``-u name|uid[:group|gid]`` (default: the
        container's). ``via`` as for :meth:`start`."""
        if not command:
            raise UsageError("exec: no command given")
        rec = self.state()
        if rec.status is Status.PAUSED:
            # docker's words; joining a frozen cgroup would freeze the command before it runs.
            raise InvalidState(f"container {self.who} is paused, unpause the container before exec")
        if not rec.status.can_exec():
            raise InvalidState(f"container {self.who} is not running (status: {rec.status})")
        validate_workdir(workdir)
        if user:
            users.validate(user)
        spec = json.dumps(
            {"args": list(command), "env": parse_env(env), "workdir": workdir, "user": user}
        )
        proc = launcher.launch(
            "exec",
            [self.dir, spec],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            via=via or self._how,
        )
        proc.handshake()
        if not wait:
            return proc
        out = read_capped(proc.stdout)[0] if proc.stdout is not None else ""
        if proc.stdout is not None:
            proc.stdout.close()
        return ExecResult(proc.wait(), out)

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
                if not follow or self.status not in LIVE:
                    rest = f.read()
                    if line + rest:
                        yield (line + rest).decode(errors="replace")
                    return
                f.seek(-len(line), os.SEEK_CUR)
                time.sleep(0.1)

    def processes(self) -> list[dict[str, Any]]:
        """The container's processes as the host sees them: host pid, pid inside, command."""
        from pycont.namespaces import nspid

        rec = self.state()
        if rec.status != Status.RUNNING:
            return []
        target = os.stat(f"/proc/{rec.pid}/ns/pid").st_ino
        out = []
        for pid in procfs.pids():
            try:
                if os.stat(f"/proc/{pid}/ns/pid").st_ino != target:
                    continue
                cmd = procfs.cmdline(pid).strip()
                out.append({"pid": pid, "nspid": nspid(pid)[-1], "cmd": cmd})
            except OSError:
                continue
        return sorted(out, key=lambda p: p["nspid"])

    # -- network ---------------------------------------------------------------------------
    def ports(self) -> list[PortBinding]:
        """docker port: the ports it publishes now, host ports resolved (none once exited)."""
        if self.state().status not in LIVE:
            return []
        return netsetup.published(self.dir)

    def connect(self, network: str, aliases: Sequence[str] = ()) -> None:
        """docker network connect: a running container gets ``eth1``… at once."""
        netsetup.connect(self.id, network, list(aliases))
        self._config = None

    def disconnect(self, network: str) -> None:
        """docker network disconnect: its device and address on that network go."""
        netsetup.disconnect(self.id, network)
        self._config = None

    def inspect(self) -> dict[str, Any]:
        """docker inspect's fields that pycont knows (see :mod:`.inspection`)."""
        from pycont.runtime.inspection import inspect

        rec = self.state()
        if rec.status is Status.DEAD:
            from pycont.runtime.inspection import inspect_dead

            return inspect_dead(self.id, self.dir, rec)
        cfg = self.config
        cgroup = self.cgroup().paths() if cfg.cgroup else {}
        return inspect(self.dir, cfg, rec, self.storage_driver(), cgroup)


def _wait_pid_exit(pid: int, timeout: float | None, name: str) -> None:
    if not procfs.wait_gone(pid, timeout):
        raise TimeoutError(f"container {name} still running after {timeout}s")
