"""Which device nodes the container may use (linux.resources.devices), in the devices cgroup.

cgroup v1 has a ``devices`` controller: ``devices.deny``/``devices.allow`` take rules like
``c 1:3 rwm`` (cgroup-v1/devices.rst). The config's rules come first (podman: deny all), then
the devices the runtime spec says every container has. cgroup v2 enforces device access with an
eBPF program only (cgroup-v2.rst "Device controller"): not done here, said so in ``features``.
"""

from __future__ import annotations

from pycont.oci.bundle import DeviceRule
from pycont.oci.cgroup import OciCgroup

__all__ = ["DEFAULT_RULES", "apply_rules"]

# The default devices (config-linux.md) and the pty ones, read/write/mknod; mknod of any node
# (it needs CAP_MKNOD anyway, and using the node is checked again on open).
DEFAULT_RULES = (
    DeviceRule(True, "c", None, None, "m"),
    DeviceRule(True, "b", None, None, "m"),
    DeviceRule(True, "c", 1, 3, "rwm"),  # null
    DeviceRule(True, "c", 1, 5, "rwm"),  # zero
    DeviceRule(True, "c", 1, 7, "rwm"),  # full
    DeviceRule(True, "c", 1, 8, "rwm"),  # random
    DeviceRule(True, "c", 1, 9, "rwm"),  # urandom
    DeviceRule(True, "c", 5, 0, "rwm"),  # tty
    DeviceRule(True, "c", 5, 1, "rwm"),  # console
    DeviceRule(True, "c", 5, 2, "rwm"),  # ptmx
    DeviceRule(True, "c", 136, None, "rwm"),  # pts/*
)


def rule_text(rule: DeviceRule) -> str:
    if rule.type == "a":
        return "a"
    major = "*" if rule.major is None else str(rule.major)
    minor = "*" if rule.minor is None else str(rule.minor)
    return f"{rule.type} {major}:{minor} {rule.access or 'rwm'}"


def apply_rules(cg: OciCgroup, rules: tuple[DeviceRule, ...]) -> None:
    """Write the rules to the v1 devices controller, in order; nothing where there is none."""
    folder = cg.paths().get("devices")
    if folder is None or not rules:
        return
    for rule in rules + DEFAULT_RULES:
        name = "devices.allow" if rule.allow else "devices.deny"
        cg.kernel.write_file(f"{folder}/{name}", rule_text(rule))
