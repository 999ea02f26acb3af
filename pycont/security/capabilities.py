"""Capabilities split root's power into about forty privileges (capabilities(7)); a container
keeps a few, as Docker does, so its root can chown and bind port 80 but not mount or load modules.

Each process has five sets, read in /proc/<pid>/status as bit masks: effective (checked now),
permitted (may become effective), inheritable and ambient (what survives execve(2)) and bounding
(the ceiling: a capability dropped from it never comes back, not even through a setuid binary).
"""

from __future__ import annotations

from collections.abc import Iterable

from pycont.errors import UsageError
from pycont.kernel._base import CAP_NAMES, Kernel, describe_cap

# Index == the capability's number (<linux/capability.h>), up to CAP_CHECKPOINT_RESTORE (40).
ALL: tuple[str, ...] = CAP_NAMES

# What Docker leaves a container (moby's default capability list): 14 names, mask 0xa80425fb.
DOCKER_DEFAULT: frozenset[str] = frozenset(
    {
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    }
)

_NUMBER = {name: i for i, name in enumerate(ALL)}
_STATUS_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def last_cap() -> int:
    """The highest capability number the running kernel knows (/proc/sys/kernel/cap_last_cap);
    this table's last one when /proc cannot tell."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(ALL) - 1


def parse(name: str) -> str:
    """The capabilities(7) name for what a user typed: ``net_admin`` and ``CAP_NET_ADMIN`` both
    give ``CAP_NET_ADMIN``. ``all`` (any case) gives ``ALL``, which only :func:`resolve` reads."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in _NUMBER:
        raise UsageError(
            f"unknown capability {name!r}: accepted are names from capabilities(7) such as "
            "NET_ADMIN or CAP_NET_ADMIN, or ALL"
        )
    return full


def _known() -> frozenset[str]:
    """Every capability both this table and the running kernel know."""
    return frozenset(ALL[: last_cap() + 1])


def resolve(add: Iterable[str], drop: Iterable[str], privileged: bool = False) -> frozenset[str]:
    """The set a container keeps, with Docker's rules for --cap-add, --cap-drop, --privileged.

    --privileged keeps every capability the kernel knows, whatever was added or dropped.
    --cap-add ALL keeps them all too, less what --cap-drop names; else --cap-drop ALL starts
    from nothing and keeps only what --cap-add names; else Docker's 14, less the drops, plus
    the adds (a name both dropped and added is kept)."""
    adds = {parse(n) for n in add}
    drops = {parse(n) for n in drop}
    if privileged:
        return _known()
    if "ALL" in adds:
        return _known() - drops
    if "ALL" in drops:
        return frozenset(adds)
    return frozenset((DOCKER_DEFAULT - drops) | adds)


def to_mask(caps: Iterable[str]) -> int:
    """The bit mask of /proc/<pid>/status (and capset(2)): bit N set for capability N."""
    mask = 0
    for name in caps:
        full = parse(name)
        if full == "ALL":
            raise UsageError("to_mask: ALL is not one capability: resolve() it to names first")
        mask |= 1 << _NUMBER[full]
    return mask


def decode(mask: int) -> list[str]:
    """The names of the bits set in ``mask``, lowest first, as ``capsh --decode`` lists them;
    a bit this table does not name is given as its number."""
    return [describe_cap(bit) for bit in range(mask.bit_length()) if mask >> bit & 1]


def of_process(pid: int | str = "self") -> dict[str, int]:
    """The five capability sets of a process (``CapInh``, ``CapPrm``, ``CapEff``, ``CapBnd``,
    ``CapAmb``), as /proc/<pid>/status shows them in hex."""
    sets: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in _STATUS_SETS:
                sets[key] = int(value.strip(), 16)
    return sets


def apply(k: Kernel, keep: frozenset[str]) -> None:
    """Leave this process (root, all capabilities, about to execve(2) the container's command)
    only ``keep``, in every set but inheritable and ambient, which end empty.

    The order matters: PR_CAPBSET_DROP needs CAP_SETPCAP, so the bounding set shrinks before
    capset(2) takes it away. Inheritable is cleared as Docker >= 20.10.14 does (CVE-2022-24769:
    left set, it let a non-root user in the container gain, through a program with inheritable
    file capabilities, capabilities outside the container's permitted set). Capabilities the
    running kernel does not know are skipped, and so are those this process does not hold
    itself (root in a container of its own may lack some, CAP_SYS_RESOURCE on these CI
    machines): capset(2) cannot raise a set, and --cap-add ALL means every one there is."""
    last = last_cap()
    # The bounding set read before any drop: what root's permitted set was made from at its
    # execve (capabilities(7)), and what an unprivileged test process still has in full.
    mask = to_mask(keep) & ((1 << (last + 1)) - 1) & of_process("self")["CapBnd"]
    k.clear_ambient()
    for cap in range(last + 1):
        if not mask >> cap & 1:
            k.drop_bounding(cap)
    # capabilities(7): an execve(2) by uid 0 gives permitted = bounding (and effective with
    # it), so the command starts with exactly ``keep``; eff = prm here keeps this process alike.
    k.capset(mask, mask, 0)
