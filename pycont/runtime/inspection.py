"""``docker inspect`` of a container: its config and state as docker's JSON document.

Field names and conventions are docker's (``HostConfig.Memory`` 0 when unset, times in RFC 3339
with the zero time for "never"), so a script written against ``docker inspect`` reads pycont's.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from pycont.cgroups.limits import Limits
from pycont.net import slirp
from pycont.net.config import INIT_LAYER, NetConfig
from pycont.net.ports import PortBinding
from pycont.rootfs import RootSpec
from pycont.runtime.netsetup import published
from pycont.runtime.state import ContainerConfig, ContainerState, Status
from pycont.security.options import UNCONFINED, SecurityOptions


def inspect(
    cdir: str,
    cfg: ContainerConfig,
    rec: ContainerState,
    storage_driver: str,
    cgroup_paths: dict[str, str],
) -> dict[str, Any]:
    """docker inspect's fields that pycont knows, for the container in folder ``cdir``."""
    spec = RootSpec(tuple(cfg.layers), cdir)
    modes = cfg.namespaces
    live = rec.status in (Status.RUNNING, Status.PAUSED)
    return {
        "Id": cfg.id,
        "Name": "/" + cfg.name,
        "Created": iso(rec.created),
        "Path": cfg.args[0],
        "Args": cfg.args[1:],
        "State": {
            "Status": str(rec.status),
            "Running": rec.status == Status.RUNNING,
            "Paused": rec.status == Status.PAUSED,
            "OOMKilled": rec.oom_killed,
            "Pid": rec.pid if live else 0,
            "ExitCode": rec.exit_code if rec.exit_code is not None else 0,
            "Error": rec.error,
            "StartedAt": iso(rec.started_at),
            "FinishedAt": iso(rec.finished_at),
        },
        "Image": cfg.image_id or cfg.image,
        "LogPath": os.path.join(cdir, "ctr.log") if cfg.detach else "",
        "Mounts": [
            {
                "Type": m.kind,
                "Name": m.source if m.kind == "volume" else "",
                "Source": m.host_path(),
                "Destination": m.target,
                "RW": not m.readonly,
            }
            for m in cfg.mounts
        ],
        "HostConfig": {
            **host_config_limits(cfg.limits),
            "AutoRemove": cfg.auto_remove,
            "PidMode": _mode(modes, "pid"),
            "NetworkMode": network_mode(cfg.network),
            "PortBindings": port_bindings(cfg.network),
            "IpcMode": _mode(modes, "ipc"),
            "UTSMode": _mode(modes, "uts"),
            "UsernsMode": _mode(modes, "user"),
            "CgroupnsMode": modes.get("cgroup", "private"),
            **_host_config_security(cfg.security),
        },
        "Config": {
            "Hostname": cfg.hostname,
            "Env": cfg.env,
            "Cmd": cfg.args,
            "WorkingDir": cfg.workdir,
            "User": cfg.user,
            "Image": cfg.image,
            "AttachStdin": cfg.interactive,
            "Labels": cfg.labels,
            "ExposedPorts": {k: {} for k in cfg.exposed_ports} or None,
        },
        "NetworkSettings": network_settings(cdir, cfg.network, live),
        "GraphDriver": {
            "Name": storage_driver,
            "Data": {
                # docker's too: the init layer (the network files' mount points) first
                "LowerDir": ":".join([*_init_layer(cdir, cfg), *cfg.layers]),
                "UpperDir": spec.upper,
                "WorkDir": spec.work,
                "MergedDir": spec.merged,
            },
        },
        "Pycont": {
            "Rootless": cfg.rootless,
            "UidMap": cfg.uid_map,
            "GidMap": cfg.gid_map,
            "Cgroup": cgroup_paths,
            "CgroupNote": cfg.cgroup_note,
        },
    }


def _init_layer(cdir: str, cfg: ContainerConfig) -> list[str]:
    path = os.path.join(cdir, INIT_LAYER)
    return [path] if cfg.network.files and os.path.isdir(path) else []


def network_mode(net: NetConfig) -> str:
    if net.mode == "container":
        return f"container:{net.container}"
    if net.mode == "bridge":
        return net.networks[0].network if net.networks else "bridge"
    return net.mode


def port_bindings(net: NetConfig) -> dict[str, list[dict[str, str]]]:
    """docker's HostConfig.PortBindings: what ``-p`` asked for ("" = any address, random)."""
    out: dict[str, list[dict[str, str]]] = {}
    for doc in net.ports:
        b = PortBinding.from_json(doc)
        port = str(b.host_port) if b.host_port else ""
        if b.host_port_end:
            port += f"-{b.host_port_end}"
        out.setdefault(f"{b.container_port}/{b.proto}", []).append(
            {"HostIp": b.host_ip, "HostPort": port}
        )
    return out


def network_settings(cdir: str, net: NetConfig, live: bool) -> dict[str, Any]:
    """docker's NetworkSettings: addresses per network, and the ports published now (host
    ports resolved: ``-p 3000`` shows the port the kernel chose)."""
    ports: dict[str, list[dict[str, str]] | None] = {}
    for doc in net.ports:
        b = PortBinding.from_json(doc)
        ports.setdefault(f"{b.container_port}/{b.proto}", None)
    for b in published(cdir) if live else []:
        bound = ports.get(f"{b.container_port}/{b.proto}") or []
        bound.append({"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)})
        ports[f"{b.container_port}/{b.proto}"] = bound
    first = net.networks[0] if net.networks else None
    if net.mode == "slirp4netns":
        return {
            "IPAddress": slirp.ADDRESS,
            "IPPrefixLen": slirp.PREFIXLEN,
            "Gateway": "",  # no default route: see pycont.net.slirp
            "MacAddress": "",
            "Ports": ports,
            "Networks": {},
            "Pycont": {"Shaping": None, "Note": "slirp4netns: a user-mode network"},
        }
    return {
        "IPAddress": first.ip if first else "",
        "IPPrefixLen": first.prefixlen if first else 0,
        "Gateway": first.gateway if first else "",
        "MacAddress": first.mac if first else "",
        "Ports": ports,
        "Networks": {
            a.network: {
                "Aliases": a.aliases or None,
                "IPAddress": a.ip,
                "IPPrefixLen": a.prefixlen,
                "Gateway": a.gateway,
                "MacAddress": a.mac,
                "Bridge": a.bridge,
                "Device": a.ifname,
            }
            for a in net.networks
        },
        "Pycont": {"Shaping": net.shaping or None, "Note": net.note},
    }


def host_config_limits(lim: Limits) -> dict[str, Any]:
    """docker inspect's HostConfig resource fields (0 = not set, as docker prints them)."""
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


def iso(ts: float) -> str:
    """RFC 3339 in UTC as docker prints it; the zero time for "never"."""
    if not ts:
        return "0001-01-01T00:00:00Z"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat().replace("+00:00", "Z")


def _host_config_security(sec: SecurityOptions) -> dict[str, Any]:
    """docker's security fields: capabilities as added to / dropped from Docker's default 14."""
    from pycont.security import capabilities

    default = capabilities.DOCKER_DEFAULT
    opts = []
    if sec.seccomp == UNCONFINED and not sec.privileged:
        opts.append("seccomp=unconfined")
    elif isinstance(sec.seccomp, dict):
        opts.append("seccomp=<custom profile>")
    if sec.no_new_privileges:
        opts.append("no-new-privileges")
    return {
        "Privileged": sec.privileged,
        "CapAdd": None if sec.privileged else sorted(sec.caps - default) or None,
        "CapDrop": None if sec.privileged else sorted(default - sec.caps) or None,
        "SecurityOpt": opts or None,
        "ReadonlyRootfs": sec.read_only,
    }


def inspect_dead(cid: str, cdir: str, rec: ContainerState) -> dict[str, Any]:
    """docker inspect of a dead container (its record cannot be read): what is known, and
    why in ``State.Error``, as docker shows ``"Dead": true``."""
    from pycont.fsutil import read_json

    cfg: dict[str, Any] = {}
    try:
        doc = read_json(os.path.join(cdir, "config.json"))
        cfg = doc if isinstance(doc, dict) else {}
    except (OSError, ValueError, RecursionError):
        pass
    return {
        "Id": cid,
        "Name": "/" + str(cfg.get("name", "")),
        "Created": iso(rec.created),
        "State": {
            "Status": str(rec.status),
            "Running": False,
            "Paused": False,
            "Dead": True,
            "OOMKilled": False,
            "Pid": 0,
            "ExitCode": rec.exit_code if rec.exit_code is not None else 0,
            "Error": rec.error,
            "StartedAt": iso(rec.started_at),
            "FinishedAt": iso(rec.finished_at),
        },
        "Image": str(cfg.get("image_id") or cfg.get("image") or ""),
    }
