"""Docker's networking model on the kernel's own objects (see DESIGN.md, net/).

- :mod:`.netlink`: the rtnetlink seam (pyroute2): bridges, veth pairs, addresses, routes.
- :mod:`.ipam`: subnets and addresses; :mod:`.networks`: networks and leases on disk.
- :mod:`.config`: a container's network config and its /etc/hosts, hostname, resolv.conf.
- :mod:`.attach`: plugging a container in (the shim, between clone and exec).
- :mod:`.ports`, :mod:`.proxy`: published ports and the user-space proxy behind them.
- :mod:`.shaping`: bandwidth and latency with tc qdiscs (tbf, netem).
- :mod:`.slirp`: slirp4netns, the user-mode network of containers without root.
- :mod:`.support`: what this machine allows (``pycont doctor``).

Every device pycont makes starts with ``pc`` (bridge ``pycont0``, ``pcb…``, veths ``pcv…``).
"""
