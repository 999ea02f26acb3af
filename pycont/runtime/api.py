"""Making containers and finding them: docker create, run, ps, and lookup by name or id.

:func:`create` turns keywords into a checked :class:`~pycont.runtime.spec.RunSpec` and hands it
to :func:`create_from_spec`, the one place a container's folder is made: under the store's lock,
as a transaction (built aside, renamed into place: :mod:`.staging`). Listing and lookup first
finish what a crash left half made or half removed (:func:`.removal.reap`).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from pycont import failpoints, images
from pycont import volumes as volumes_mod
from pycont.cgroups.limits import Limits
from pycont.errors import (
    ContainerNotFound,
    ContainerTimeout,
    NameConflict,
    PycontError,
    StartError,
    UsageError,
)
from pycont.namespaces import Namespace
from pycont.rootfs import RootSpec, prepare_dirs
from pycont.runtime import netsetup, removal, staging
from pycont.runtime import state as st
from pycont.runtime._container import PIPE, STDOUT, Container, Narrate
from pycont.runtime.argcheck import check_image_config
from pycont.runtime.output import MAX_OUTPUT, read_capped
from pycont.runtime.spec import RunSpec, limits_to_json
from pycont.runtime.state import Status

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


def _random_name(taken: set[str]) -> str:
    while True:
        name = f"{random.choice(_ADJECTIVES)}_{random.choice(_NAMES)}"
        if name not in taken:
            return name
        name += f"{random.randint(0, 99)}"
        if name not in taken:
            return name


def _merge_env(*groups: Sequence[str]) -> list[str]:
    merged: dict[str, str] = {}
    for group in groups:
        for item in group:
            k, _, v = item.partition("=")
            merged[k] = v
    return [f"{k}={v}" for k, v in merged.items()]


def create(image: str, command: Sequence[str] | None = None, **options: Any) -> Container:
    """Create a container (docker create): checks everything, starts nothing.

    Options: ``name``, ``hostname``, ``env=["K=V"]``, ``workdir``, ``detach``, ``interactive``,
    ``rm``; namespace modes ``pid``, ``network``, ``ipc``, ``uts``, ``userns``, ``cgroupns``
    ("private" or "host"); ``narrate``; ``volumes``, docker's ``-v`` specs:
    ``["data:/data", "/src:/s:ro"]``; and docker's resource flags, as strings or numbers:
    ``memory="64m"``, ``memory_swap``, ``memory_reservation``, ``cpus=0.5``, ``cpu_shares``,
    ``cpuset_cpus``, ``pids_limit``, ``device_read_bps=["/dev/vda:1mb"]``,
    ``device_write_bps``, ``blkio_weight``; docker's security flags: ``cap_add=["NET_ADMIN"]``,
    ``cap_drop=["ALL"]``, ``privileged``, ``security_opt=["seccomp=unconfined"]``,
    ``read_only``; ``user="name|uid[:group|gid]"`` (docker's ``-u``: names from the image's
    /etc/passwd and /etc/group; the image's ``USER`` when not given)."""
    return create_from_spec(RunSpec.from_options(image, command, **options))


def create_from_spec(spec: RunSpec, image: images.Image | None = None) -> Container:
    """Create a container from a checked spec: resolve the image, make its folder.

    ``image``: the layers and config to use instead of resolving ``spec.image`` (the builder's
    intermediate steps, which are not images in the store)."""
    use_cgroup, cgroup_note = _cgroup_for(spec.limits)
    img = image or images.resolve(spec.image)
    check_image_config(
        img.name,
        Env=img.env,
        Cmd=img.cmd,
        Entrypoint=img.entrypoint,
        WorkingDir=img.workdir,
        User=img.user,
    )
    # docker: the image's ENTRYPOINT, then the command (or the image's CMD).
    args = list(img.entrypoint) + (list(spec.command) if spec.command else list(img.cmd))
    if not args or not args[0]:
        raise UsageError(f"no command specified: give one, image {img.name} has no default")
    cid = os.urandom(32).hex()
    rootless = os.geteuid() != 0
    if rootless and spec.namespaces.get(Namespace.USER.procname) == "host":
        raise UsageError("--userns host needs root: without it, namespaces need a user namespace")
    if rootless:
        # user_namespaces(7): without privilege, one line mapping our own uid and gid.
        uid_map, gid_map = [[0, os.geteuid(), 1]], [[0, os.getegid(), 1]]
    else:
        # As root, asked for with --userns private: the identity map. Every id is itself, so
        # this namespace isolates nothing (root inside is root outside for every file); the
        # container is held in by its capabilities, seccomp and masked paths, as without it.
        uid_map, gid_map = [[0, 0, 4294967295]], [[0, 0, 4294967295]]
    host = spec.hostname or cid[:12]
    cfg = st.ContainerConfig(
        id=cid,
        name="",
        image=img.name,
        layers=list(img.layers),
        args=args,
        # HOME=/root for root; with a user, its passwd entry gives HOME at start (users.py).
        env=_merge_env(
            img.env,
            [f"HOSTNAME={host}", *(() if spec.user or img.user else ("HOME=/root",))],
            spec.env,
        ),
        workdir=spec.workdir or img.workdir,
        hostname=host,
        namespaces=dict(spec.namespaces),
        detach=spec.detach,
        interactive=spec.interactive,
        auto_remove=spec.rm,
        rootless=rootless,
        uid_map=uid_map,
        gid_map=gid_map,
        narrate=spec.narrate,
        limits=spec.limits,
        cgroup=use_cgroup,
        cgroup_note=cgroup_note,
        image_id=img.id,
        storage_driver=_storage_driver(),
        mounts=[m.resolved() for m in spec.volumes],
        security=spec.security,
        user=spec.user or img.user,
        labels=dict(spec.labels),
        exposed_ports=list(img.exposed_ports),
    )
    with st.store_lock():
        # The folder is built aside and renamed into place (staging): until then the container
        # does not exist, so a crash at any step leaves no container that breaks a listing,
        # only a leftover that the next listing or prune removes (removal.reap).
        taken = set(st.ids_and_names().values())
        if spec.name is not None and spec.name in taken:
            raise NameConflict(
                f'the container name "{spec.name}" is already in use: remove that container '
                "or choose another name"
            )
        cfg.name = spec.name or _random_name(taken)
        cdir = ""
        try:
            for m in spec.volumes:
                if m.kind == "volume":
                    volumes_mod.create(m.source)  # docker makes a named volume on first use
            cdir = staging.begin_create(cid)
            failpoints.hit("create.dir-made")
            prepare_dirs(RootSpec(tuple(cfg.layers), cdir))
            failpoints.hit("create.layers-prepared")
            cfg.network = netsetup.plan(spec, cid, cfg.name, img.exposed_ports)
            netsetup.write_files(cdir, cfg.network, cfg.hostname)
            st.save_config(cfg, cdir)
            failpoints.hit("create.config-written")
            st.save_state(cdir, st.ContainerState())
            failpoints.hit("create.state-written")
            staging.publish(cdir, cid)
        except BaseException:
            if cdir:
                staging.finish(cdir)
            netsetup.release(cid)
            raise
    failpoints.hit("create.published")
    netsetup.refresh(a.network for a in cfg.network.networks)
    return Container(cid)


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
    via: str | None = None,
    wait: bool = True,
    max_output: int | None = MAX_OUTPUT,
    **options: Any,
) -> Container:
    """Create and start a container (docker run).

    ``detach=True`` returns the running container at once (output in :meth:`Container.logs`).
    Otherwise it waits: the output is in ``.output`` and the code in ``.exit_code`` (as with
    subprocess.run). ``stdout=None`` passes the output through instead of capturing it.
    ``max_output``: bytes of output kept in ``.output`` (default 4 MiB: the first ones and the
    last 4 KiB, and a line saying how much was dropped between them); None keeps it all.
    ``timeout``: seconds the command may run; past them the container is killed (as
    subprocess.run kills its child) and :class:`~pycont.errors.ContainerTimeout` raised.
    ``via``: how to start the shim (see :meth:`Container.start`). ``wait=False`` returns as
    soon as the command runs, its pipes (``.stdout``...) left to the caller, as Popen does:
    the CLI forwards signals and the magics stream the output before :meth:`Container.wait`."""
    _check_run_limits(timeout, max_output)
    c = create(image, command, detach=detach, narrate=bool(narrate), **options)
    try:
        c.start(
            stdin=stdin,
            stdout=None if detach else stdout,
            stderr=stderr,
            narrate=narrate,
            via=via,
        )
    except StartError:
        raise  # recorded as exited with its code, as docker keeps it (removed when rm=True)
    except BaseException:
        with contextlib.suppress(ContainerNotFound):
            c.remove(force=True)
        raise
    if detach or not wait:
        return c
    # One deadline for reading the output and waiting: the output is read as it comes (never
    # held whole, see pycont.runtime.output), so a flood cannot sink this process either.
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False
    if c.stdout is not None:
        try:
            c.output, timed_out = read_capped(c.stdout, max_output, deadline)
        finally:
            if timed_out:
                _kill_after_timeout(c)
            c.stdout.close()
    if not timed_out:
        try:
            c.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            return c
        except TimeoutError:
            _kill_after_timeout(c)
    raise ContainerTimeout(
        f"container {c.name} still running after timeout={timeout}s: killed it ({_ended(c)})",
        container=c,
        output=c.output,
    )


def _check_run_limits(timeout: float | None, max_output: int | None) -> None:
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 <= timeout < 1e9  # also NaN and inf: select(2) takes neither
    ):
        raise UsageError(f"invalid timeout {timeout!r}: expected seconds >= 0, or None")
    if max_output is not None and (
        isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 0
    ):
        raise UsageError(
            f"invalid max_output {max_output!r}: expected a number of bytes >= 0, or None"
        )


def _kill_after_timeout(c: Container) -> None:
    """Kill every process of a container that ran out of time, and wait until its shim has
    recorded the end (and removed it, with rm=True): nothing of it keeps running."""
    with contextlib.suppress(PycontError, OSError):
        if c.config.cgroup:
            c.cgroup().kill_all()  # freeze, kill all, thaw: its children too
    with contextlib.suppress(PycontError):
        c.kill(signal.SIGKILL)
    with contextlib.suppress(PycontError, TimeoutError):
        c.wait(30)


def _ended(c: Container) -> str:
    with contextlib.suppress(PycontError):
        if (code := c.state().exit_code) is not None:
            return f"exit code {code}"
    return "it may still be stopping"


def get(name_or_id: str) -> Container:
    """The container with that name, id or unique id prefix."""
    if not name_or_id:
        raise UsageError("no container name or id given")
    removal.reap()  # what a crash left half made or half removed goes first
    table = st.ids_and_names()
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
    """Running containers (docker ps), or every container with ``all=True``: dead ones too
    (their record cannot be read: status dead, the reason in ``state().error``)."""
    removal.reap()  # what a crash left half made or half removed goes first
    found = []
    for cid in st.ids_and_names():
        c = Container(cid)
        try:
            rec = c.state()
        except ContainerNotFound:
            continue  # removed meanwhile
        if all or rec.status in (Status.RUNNING, Status.PAUSED):
            found.append((rec.created, c))
    return [c for _, c in sorted(found, key=lambda pair: pair[0], reverse=True)]


def prune() -> list[str]:
    """Remove every stopped (exited or dead) container, and finish what a crash left half made
    or half removed; returns the ids removed (``container prune``, ``system prune``)."""
    removal.reap(block=True)
    removed = []
    for c in containers(all=True):
        try:
            if c.state().status in (Status.EXITED, Status.DEAD):
                c.remove()
                removed.append(c.id)
        except PycontError:
            continue  # started again, or removed, meanwhile
    return removed


def config_dict(c: Container) -> dict[str, Any]:
    """The container's config as config.json holds it (limits as numbers)."""
    doc = asdict(c.config)
    doc["limits"] = limits_to_json(c.config.limits)
    return doc


def _containers_using(image_id: str) -> list[str]:
    """Containers made from an image: rmi refuses to remove it while any exist."""
    out = []
    for c in containers(all=True):
        with contextlib.suppress(PycontError):
            if c.config.image_id == image_id:
                out.append(c.name)
    return out


images.set_in_use_hook(_containers_using)
