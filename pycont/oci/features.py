"""``features``: what this runtime understands (runtime-spec features.md, features-linux.md)."""

from __future__ import annotations

from typing import Any

from pycont.oci.bundle import HOOK_NAMES, NAMESPACE_TYPES
from pycont.oci.mounts import _FLAGS, _IGNORED, _PROPAGATION
from pycont.oci.state import OCI_VERSION

__all__ = ["features"]


def features() -> dict[str, Any]:
    from pycont.cgroups import current_layout, detect
    from pycont.security.capabilities import ALL

    version = detect(current_layout())
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_NAMES),
        "mountOptions": sorted(set(_FLAGS) | set(_PROPAGATION) | set(_IGNORED)),
        "linux": {
            "namespaces": [n for n in NAMESPACE_TYPES],
            "capabilities": list(ALL),
            "cgroup": {
                "v1": True,
                "v2": True,
                "systemd": False,
                "systemdUser": False,
                "rdma": False,
            },
            "seccomp": {
                "enabled": True,
                "actions": [
                    "SCMP_ACT_ALLOW",
                    "SCMP_ACT_ERRNO",
                    "SCMP_ACT_KILL",
                    "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD",
                    "SCMP_ACT_LOG",
                    "SCMP_ACT_TRAP",
                    "SCMP_ACT_TRACE",
                ],
                "operators": [
                    "SCMP_CMP_NE",
                    "SCMP_CMP_LT",
                    "SCMP_CMP_LE",
                    "SCMP_CMP_EQ",
                    "SCMP_CMP_GE",
                    "SCMP_CMP_GT",
                    "SCMP_CMP_MASKED_EQ",
                ],
                "archs": [
                    "SCMP_ARCH_X86_64",
                    "SCMP_ARCH_X86",
                    "SCMP_ARCH_X32",
                    "SCMP_ARCH_AARCH64",
                ],
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {
            "org.pycont.cgroup": version,
            "org.pycont.devices.v2": "not enforced (needs an eBPF program)",
        },
    }
