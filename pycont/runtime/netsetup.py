"""A container's network across its life: leased at create, plugged in at start, given back
at remove (the glue between the runtime's records and :mod:`pycont.net`).

- :func:`plan` (create): the ``--network`` asked for becomes a :class:`NetConfig`: an address
  leased on each bridge network, published ports checked free, ``/etc/hosts``,
  ``/etc/hostname`` and ``/etc/resolv.conf`` written into the container's folder.
- :func:`start` (the shim, between clone and exec): veths, addresses, shaping, then the ports'
  listening sockets handed to a ``pycont-proxy`` process; the ports actually bound are
  recorded in ``ports.json`` (``-p 3000`` gets a random host port).
- :func:`release` (remove, also ``--rm``): the leases go back; the other containers of its
  networks get their ``/etc/hosts`` rewritten.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pycont.errors import (
    ContainerNotFound,
    NetworkError,
    NetworkNotFound,
    PycontError,
    UsageError,
)
from pycont.fsutil import read_json, write_json
from pycont.kernel import LinuxKernel
from pycont.kernel._base import Kernel
from pycont.net import attach, netlink, networks, ports, proxy
from pycont.net import slirp as slirp_mod
from pycont.net.config import (
    Attachment,
    NetConfig,
    hosts_text,
    make_init_layer,
    resolv_text,
    write_in_place,
)
from pycont.runtime import state as st

if TYPE_CHECKING:
    from pycont.runtime.spec import RunSpec

PORTS_FILE = "ports.json"


def default_network() -> tuple[str, str]:
    """docker's default, ``bridge``, as root. Without root no veth can be plugged into a host
    bridge: ``slirp4netns`` where it can run (docker's and podman's rootless default), else
    ``none``, and why."""
    if os.geteuid() == 0:
        return "bridge", ""
    ok, why = slirp_mod.available()
    if ok:
        return "slirp4netns", ""
    return "none", f"rootless: loopback only ({why})"


def _container_id(name_or_id: str) -> str:
    known = st.ids_and_names()
    for cid, name in known.items():
        if name == name_or_id or cid == name_or_id:
            return cid
    found = [cid for cid in known if cid.startswith(name_or_id)]
    if len(name_or_id) >= 3 and len(found) == 1:
        return found[0]
    raise ContainerNotFound(f"no such container: {name_or_id} (from --network container:)")


def plan(spec: RunSpec, cid: str, name: str, exposed: Iterable[str] = ()) -> NetConfig:
    """The container's network, leases taken (call :func:`release` if creation fails later)."""
    asked = spec.network
    note = ""
    if not asked:
        asked, note = default_network()
    cfg = NetConfig(
        mode=asked,
        dns=list(spec.dns),
        add_hosts=list(spec.add_hosts),
        shaping=dict(spec.shaping),
        note=note,
    )
    bindings = list(spec.publish)
    if spec.publish_all:
        bindings += ports.publish_all(exposed)
    if asked.startswith("container:"):
        cfg.mode = "container"
        cfg.container = _container_id(asked.partition(":")[2])
    elif asked in ("host", "none"):
        pass
    elif asked == "slirp4netns":
        ok, why = slirp_mod.available()
        if not ok:
            raise NetworkError(f"--network slirp4netns: {why}")
        if spec.network_aliases or spec.shaping:
            raise UsageError(
                "--network slirp4netns takes published ports, but no --network-alias, "
                "--network-rate or --network-latency (bridge networks do)"
            )
        ports.check_free(bindings)
        cfg.ports = [b.to_json() for b in bindings]
        return cfg
    else:
        cfg.mode = "bridge"
        if not networks.exists(asked):
            raise NetworkNotFound(
                f"network {asked} not found: create it (pycont network create {asked}) or use "
                "bridge, host, none, container:NAME or slirp4netns"
            )
    if cfg.mode != "bridge":
        if bindings:
            raise UsageError(
                f"cannot publish ports with --network {asked}: published ports need a bridge "
                "network (with host, the container's ports are already the host's)"
            )
        if spec.network_aliases:
            raise UsageError("--network-alias is supported only on user-defined networks")
        if spec.shaping:
            raise UsageError(f"--network-rate/--network-latency need a bridge network, not {asked}")
        return cfg
    if spec.network_aliases and asked == networks.DEFAULT:
        raise UsageError("--network-alias is supported only on user-defined networks")
    if spec.shaping.get("latency"):
        from pycont.net import shaping

        ok, why = shaping.netem_available()  # refused now, not at each start
        if not ok:
            raise NetworkError(why)
    ports.check_free(bindings)
    cfg.ports = [b.to_json() for b in bindings]
    net = networks.lease(asked, cid, name, list(spec.network_aliases))
    cfg.networks.append(_attachment(net, cid, 0))
    return cfg


def _attachment(net: networks.Network, cid: str, index: int) -> Attachment:
    lease = net.leases[cid]
    return Attachment(
        network=net.name,
        ip=lease.ip,
        mac=lease.mac,
        prefixlen=net.prefixlen,
        gateway=net.gateway,
        bridge=net.bridge,
        aliases=list(lease.aliases),
        user_defined=net.user_defined,
        index=index,
    )


def write_files(cdir: str, cfg: NetConfig, hostname: str) -> None:
    """The container's /etc/hosts, /etc/hostname and /etc/resolv.conf, in its folder."""
    if not cfg.files:
        return
    make_init_layer(cdir)
    write_in_place(os.path.join(cdir, "hostname"), hostname + "\n")
    write_in_place(os.path.join(cdir, "resolv.conf"), resolv_text(cfg))
    _write_hosts(cdir, cfg, hostname)


def _write_hosts(cdir: str, cfg: NetConfig, hostname: str) -> None:
    write_in_place(os.path.join(cdir, "hosts"), hosts_text(cfg, hostname, _peers(cdir, cfg)))


def _peers(cdir: str, cfg: NetConfig) -> list[tuple[str, str, list[str]]]:
    """The other containers on the user-defined networks of this one."""
    me = os.path.basename(cdir)
    found = []
    for att in cfg.networks:
        if not att.user_defined:
            continue
        with contextlib.suppress(PycontError):
            for cid, lease in networks.get(att.network).leases.items():
                if cid != me:
                    found.append((lease.ip, lease.container, [*lease.aliases, cid[:12]]))
    return found


def refresh(names: Iterable[str]) -> None:
    """Rewrite /etc/hosts of every container on the networks ``names`` (one joined or left)."""
    done: set[str] = set()
    for name in names:
        try:
            net = networks.get(name)
        except PycontError:
            continue
        if not net.user_defined:
            continue
        for cid in net.leases:
            if cid in done:
                continue
            done.add(cid)
            cdir = st.container_dir(cid)
            try:
                cfg = st.load_config(cdir)
            except (OSError, ValueError):  # removed meanwhile
                continue
            with contextlib.suppress(OSError):
                _write_hosts(cdir, cfg.network, cfg.hostname)


@netlink.off_loop
def release(cid: str, cfg: NetConfig | None = None) -> None:
    """Give back the container's leases and tell its networks' other containers."""
    changed = networks.release(cid)
    refresh(n.name for n in changed)
    if cfg is not None and cfg.networks:
        with contextlib.suppress(PycontError, OSError):
            attach.leave(cid, cfg)


@netlink.off_loop
def connect(cid: str, network: str, aliases: list[str] | None = None) -> Attachment:
    """``network connect NETWORK CONTAINER``: a lease on one more network; a running
    container gets its veth (``eth1``…) at once, a stopped one at its next start."""
    cdir = st.container_dir(cid)
    with st.store_lock():
        cfg = st.load_config(cdir)
        net = cfg.network
        if net.mode != "bridge":
            raise UsageError(
                f"container {cfg.name} has --network {net.mode}: only a container on bridge "
                "networks can be connected to another"
            )
        if any(a.network == network for a in net.networks):
            raise NetworkError(f"container {cfg.name} is already connected to network {network}")
        found = networks.get(network)  # NetworkNotFound first
        if aliases and not found.user_defined:
            raise UsageError("--alias is supported only on user-defined networks")
        leased = networks.lease(found.name, cid, cfg.name, list(aliases or ()))
        try:
            index = max((a.index for a in net.networks), default=-1) + 1
            att = _attachment(leased, cid, index)
            rec = st.load_state(cdir)
            if rec.status is st.Status.RUNNING and rec.pid:
                attach.connect_running(LinuxKernel(), cid, rec.pid, att)
            net.networks.append(att)
            st.save_config(cfg)
        except BaseException:
            networks.release(cid, only=found.name)
            raise
    write_files(cdir, net, cfg.hostname)
    refresh([found.name])
    return att


@netlink.off_loop
def disconnect(cid: str, network: str) -> None:
    """``network disconnect NETWORK CONTAINER``: its device there goes, and its lease."""
    cdir = st.container_dir(cid)
    with st.store_lock():
        cfg = st.load_config(cdir)
        net = cfg.network
        found = [a for a in net.networks if a.network == network]
        if not found:
            raise NetworkError(f"container {cfg.name} is not connected to network {network}")
        rec = st.load_state(cdir)
        if rec.status is st.Status.RUNNING:
            attach.disconnect_running(cid, found[0])
        net.networks.remove(found[0])
        st.save_config(cfg)
        networks.release(cid, only=network)
    write_files(cdir, net, cfg.hostname)
    refresh([network])


# -- in the shim --------------------------------------------------------------------------
@dataclass
class Plumbing:
    """What the shim runs for a container's network while it lives: the proxy of its
    published ports (bridge networks) or its slirp4netns (``--network slirp4netns``)."""

    proxy: int = 0
    slirp: slirp_mod.Slirp | None = None


def start(k: Kernel, cdir: str, cid: str, cfg: NetConfig, pid: int) -> Plumbing:
    """Plug process ``pid`` in and publish its ports. Raises NetworkError (or
    ports.PortInUse) having undone what it made."""
    bindings = [ports.PortBinding.from_json(b) for b in cfg.ports]
    if cfg.mode == "slirp4netns":
        slirp = slirp_mod.start(pid, cid, os.path.join(cdir, "slirp4netns.log"))
        try:
            done = slirp_mod.forward(slirp, bindings)
        except BaseException:
            slirp_mod.stop(slirp)
            raise
        if done:
            write_json(os.path.join(cdir, PORTS_FILE), [b.to_json() for b in done])
        return Plumbing(slirp=slirp)
    if cfg.mode != "bridge" or not cfg.networks:
        return Plumbing()
    attach.join(k, cid, cfg, pid)
    if not bindings:
        return Plumbing()
    try:
        bound = ports.bind(bindings)
    except BaseException:
        attach.leave(cid, cfg)
        raise
    write_json(os.path.join(cdir, PORTS_FILE), [b.binding.to_json() for b in bound])
    return Plumbing(proxy=proxy.start(bound, cfg.networks[0].ip))


def stop(cdir: str, plumbing: Plumbing | None) -> None:
    """The container exited: its proxy or slirp4netns goes, and its ports are no longer
    published."""
    if plumbing is not None and plumbing.proxy:
        with contextlib.suppress(OSError):
            proxy.stop(plumbing.proxy)
    if plumbing is not None and plumbing.slirp is not None:
        slirp_mod.stop(plumbing.slirp)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(cdir, PORTS_FILE))


def published(cdir: str) -> list[ports.PortBinding]:
    """The ports a running container has published, host ports resolved."""
    try:
        return [ports.PortBinding.from_json(b) for b in read_json(os.path.join(cdir, PORTS_FILE))]
    except FileNotFoundError:
        return []


def join_target(cfg: NetConfig) -> int:
    """``--network container:NAME``: the pid whose network namespace to join; it must run."""
    cdir = st.container_dir(cfg.container)
    try:
        rec = st.load_state(cdir)
    except FileNotFoundError:
        raise NetworkError("the container whose network was to be joined is gone") from None
    if rec.status.value != "running" or not rec.pid:
        raise NetworkError(
            f"cannot join the network of container {cfg.container[:12]}: it is not running"
        )
    return rec.pid
