"""What this machine allows for networks, for ``pycont doctor`` and the course's probes."""

from __future__ import annotations

import os

from pycont.net.netlink import off_loop


@off_loop
def networks() -> tuple[bool, str]:
    """Can containers get docker's bridge networks here? As root, asked of the kernel: a
    bridge and a veth pair made in a throwaway network namespace (a few ms)."""
    if os.geteuid() != 0:
        from pycont.net import slirp

        ok, why = slirp.available()
        if ok:
            return True, "rootless: slirp4netns, a user-mode network (a host bridge needs root)"
        return False, f"rootless: containers get loopback only ({why})"
    from pyroute2 import NetlinkError

    from pycont.kernel import LinuxKernel
    from pycont.net import netlink

    try:
        with netlink.scratch(LinuxKernel()) as ipr:
            for kind, extra in (("bridge", {}), ("veth", {"peer": {"ifname": "pcprobe1"}})):
                try:
                    ipr.link("add", ifname=f"pcprobe-{kind[0]}", kind=kind, **extra)
                except NetlinkError as err:
                    return False, f"this kernel cannot make a {kind} device: {err}"
    except OSError as err:
        return False, f"cannot create a network namespace: {err}"
    return True, "bridge networks: a bridge per network, a veth pair per container (as root)"


@off_loop
def latency() -> tuple[bool, str]:
    """Can ``--network-latency`` work (the netem qdisc)? Probed only as root."""
    if os.geteuid() != 0:
        return False, "not probed: needs root"
    from pycont.net import shaping

    ok, why = shaping.netem_available()
    return ok, "netem qdisc available" if ok else why
