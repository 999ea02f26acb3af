"""Traffic shaping: a container's bandwidth and added latency, as queueing disciplines (qdiscs).

Bandwidth is not a cgroup controller: the kernel shapes packets where they leave a network device,
with a qdisc attached to it (tc(8)). ``--network-rate 1mbit`` becomes a token bucket (tc-tbf(8)) and
``--network-latency 50ms`` a network emulator (tc-netem(8)) on the container's end of its veth.
Everything here talks netlink through pyroute2 (RTM_NEWQDISC / RTM_GETQDISC); no ``tc`` process.
"""

from __future__ import annotations

import errno
import json
import math
import re
import threading
from dataclasses import dataclass
from typing import Any

from pycont.errors import KernelError, NetworkError, UsageError
from pycont.net.netlink import off_loop

__all__ = [
    "MAX_LATENCY",
    "MAX_RATE",
    "NETEM_MISSING",
    "ShapingError",
    "Shaping",
    "apply",
    "format_latency",
    "format_rate",
    "netem_available",
    "parse_latency",
    "parse_rate",
    "read",
]

# The tbf options struct carries the rate as u32 bytes/s (tc_ratespec.rate); bigger rates need
# TCA_TBF_RATE64, which pyroute2 does not send: 2**32-1 bytes/s = about 34 gbit is our ceiling.
MAX_RATE = (2**32 - 1) * 8
# An added delay beyond a minute is a mistake, not an experiment (netem's u32 ticks end at ~274 s).
MAX_LATENCY = 60.0
NETEM_MISSING = "--network-latency needs the netem qdisc (sch_netem), which this kernel lacks"

_TC_H_ROOT = 0xFFFFFFFF
_ROOT = 0x10000  # handle 1:
_ROOT_CLASS = 0x10001  # netem's only class, 1:1: where its child qdisc hangs
_CHILD = 0x100000  # handle 10:
# tc-tbf(8): the queue may hold this much time worth of packets at the rate; more are dropped.
_TBF_QUEUE_US = 50_000
# tc-tbf(8): the bucket ("burst") must hold at least rate/HZ bytes, else the rate cannot be
# reached, and at least one packet. 10 ms worth of the rate (HZ=100), and never under 16 KiB:
# veth hands tbf GSO packets of up to 64 KiB, and tbf splits those larger than its bucket.
_BURST_SECONDS = 0.01
_MIN_BURST = 16 * 1024

# tc(8) "RATES": bit-based units; "bps" is BYTES per second (tc's confusing convention, kept so
# that a tc user's value means the same here). Case-insensitive, as tc's get_rate().
_BIT_UNITS = {"": 1, "bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12}
_BIT_UNITS |= {"kibit": 2**10, "mibit": 2**20, "gibit": 2**30, "tibit": 2**40}
# ... and each again in bytes per second: bps, kbps, mbps, ..., kibps, ...
_BYTE_UNITS = {u.replace("bit", "bps"): 8 * v for u, v in _BIT_UNITS.items() if u}
_RATE_UNITS = _BIT_UNITS | _BYTE_UNITS
_RATE_HELP = "expected a number and a unit (bit, kbit, mbit, gbit; bps, kbps, mbps = bytes/s)"
_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_LATENCY_HELP = "expected a number and a unit (us, ms, s), e.g. 50ms"
_NUMBER = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)


class ShapingError(KernelError, NetworkError):
    """The kernel refused a traffic-control request. Keeps netlink's errno (it is an OSError);
    ``str()`` is one line: ``message`` when given, else KernelError's operation and errno."""

    def __init__(self, op: str, err: int, target: str | None = None, message: str = "") -> None:
        super().__init__(op, err, target)
        self.message = message

    def __str__(self) -> str:
        return self.message or super().__str__()


def _q(text: str) -> str:
    """The value as typed, quoted as JSON: control characters escaped, the message one line."""
    return json.dumps(text, ensure_ascii=False)


def parse_rate(text: str) -> int:
    """tc(8)'s rate, e.g. ``1mbit``, ``512kibit``, ``100kbps`` (bytes/s!), in bits per second.
    A bare number is bits per second, as in tc."""
    m = _NUMBER.fullmatch(text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _RATE_UNITS:
        raise UsageError(f"invalid rate {_q(text)}: {_RATE_HELP}")
    bits = round(float(m.group(1)) * _RATE_UNITS[unit])
    if bits < 8:  # tbf counts whole bytes per second
        raise UsageError(f"invalid rate {_q(text)}: must be at least 8bit (1 byte/s)")
    if bits > MAX_RATE:
        raise UsageError(
            f"invalid rate {_q(text)}: at most {MAX_RATE // 10**9}gbit (tbf's 32-bit field)"
        )
    return bits


def parse_latency(text: str) -> float:
    """An added delay, e.g. ``50ms``, ``200us``, ``1.5s``, in seconds. The unit is required: a
    bare ``50`` would be milliseconds to tc but could as well mean seconds to a reader."""
    m = _NUMBER.fullmatch(text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _TIME_UNITS:
        raise UsageError(f"invalid latency {_q(text)}: {_LATENCY_HELP}")
    seconds = float(m.group(1)) * _TIME_UNITS[unit]
    if round(seconds * 1e6) < 1:  # netem counts whole microseconds here
        raise UsageError(f"invalid latency {_q(text)}: must be at least 1us")
    if seconds > MAX_LATENCY:
        raise UsageError(f"invalid latency {_q(text)}: at most {format_latency(MAX_LATENCY)}")
    return seconds


def format_rate(bits: int) -> str:
    """The shortest exact decimal form, as tc prints it: 1000000 -> ``1mbit``."""
    for unit in ("tbit", "gbit", "mbit", "kbit"):
        if bits % _BIT_UNITS[unit] == 0:
            return f"{bits // _BIT_UNITS[unit]}{unit}"
    return f"{bits}bit"


def format_latency(seconds: float) -> str:
    """Whole seconds, milliseconds or microseconds: 0.05 -> ``50ms``."""
    us = round(seconds * 1e6)
    if us % 1_000_000 == 0:
        return f"{us // 1_000_000}s"
    if us % 1000 == 0:
        return f"{us // 1000}ms"
    return f"{us}us"


@dataclass(frozen=True)
class Shaping:
    """What a container's traffic goes through: ``rate`` in bit/s and ``latency`` in seconds;
    0 means none."""

    rate: int = 0
    latency: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= MAX_RATE:
            raise UsageError(f"invalid rate {self.rate}: expected 0 to {MAX_RATE} bit/s")
        if not 0 <= self.latency <= MAX_LATENCY:
            raise UsageError(f"invalid latency {self.latency}: expected 0 to {MAX_LATENCY} s")

    def __bool__(self) -> bool:
        return bool(self.rate or self.latency)

    def describe(self) -> str:
        """One line for ``inspect`` and the notebooks: ``1mbit, +50ms``."""
        parts = []
        if self.rate:
            parts.append(format_rate(self.rate))
        if self.latency:
            parts.append(f"+{format_latency(self.latency)}")
        return ", ".join(parts) or "unshaped"

    def to_json(self) -> dict[str, Any]:
        """Only what is set: ``{}`` for no shaping. ``Shaping.from_json(s.to_json()) == s``."""
        out: dict[str, Any] = {}
        if self.rate:
            out["rate"] = self.rate
        if self.latency:
            out["latency"] = self.latency
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Shaping:
        data = data or {}
        return cls(rate=int(data.get("rate", 0)), latency=float(data.get("latency", 0.0)))


def _tbf_options(rate: int) -> dict[str, Any]:
    """pyroute2's tbf arguments: ints are taken as bytes/s, bytes and microseconds."""
    byte_rate = rate // 8
    return {
        "rate": byte_rate,
        "burst": max(math.ceil(byte_rate * _BURST_SECONDS), _MIN_BURST),
        "latency": _TBF_QUEUE_US,
    }


def _tree(shaping: Shaping) -> list[tuple[str, int, int, dict[str, Any]]]:
    """The qdiscs to attach, parents first: (kind, parent, handle, pyroute2 arguments).

    With both, netem is the root (handle 1:) and tbf its child (10: under class 1:1), as in
    tc-netem(8)'s example of delay with rate control: netem holds each packet for the delay,
    then tbf paces what comes out, with its own queue bound (50 ms worth of the rate). The other
    way round, tbf's limit would not apply (tc-tbf(8): it sizes tbf's default child, which netem
    replaces), so only netem's packet limit (1000, tc's default) would bound the queue."""
    delay = {"delay": round(shaping.latency * 1e6)}  # pyroute2: an int is microseconds
    if shaping.rate and shaping.latency:
        return [
            ("netem", _TC_H_ROOT, _ROOT, delay),
            ("tbf", _ROOT_CLASS, _CHILD, _tbf_options(shaping.rate)),
        ]
    if shaping.rate:
        return [("tbf", _TC_H_ROOT, _ROOT, _tbf_options(shaping.rate))]
    if shaping.latency:
        return [("netem", _TC_H_ROOT, _ROOT, delay)]
    return []


def _qdiscs(ipr: Any, ifindex: int) -> dict[int, Any]:
    """The device's qdiscs by parent handle (RTM_GETQDISC dump)."""
    return {int(q["parent"]): q for q in ipr.get_qdiscs(index=ifindex)}


def _kinds(qdiscs: dict[int, Any]) -> list[str]:
    """The shape of what is attached, in _tree()'s order: root kind, then its child's. [] for
    the device's default (handle 0: noqueue on a veth), ["foreign"] for a tree not of ours."""
    root = qdiscs.get(_TC_H_ROOT)
    if root is None or root["handle"] == 0:
        return []
    if root["handle"] != _ROOT:
        return ["foreign"]
    child = qdiscs.get(_ROOT_CLASS)
    return [root.get_attr("TCA_KIND"), *([child.get_attr("TCA_KIND")] if child else [])]


def apply(ipr: Any, ifindex: int, shaping: Shaping) -> None:
    """Attach ``shaping`` to device ``ifindex`` (replacing what pycont attached before; an empty
    Shaping restores the device's default). ``ipr`` is a pyroute2 IPRoute already in the
    device's network namespace. Idempotent: the same call twice leaves the same qdiscs.

    Raises ShapingError (NETEM_MISSING when the kernel has no netem)."""
    from pyroute2.netlink.exceptions import NetlinkError

    tree = _tree(shaping)
    # "replace" changes a qdisc in place only when its handle and kind match (sch_api.c
    # tc_modify_qdisc: a different kind under the same handle is EINVAL); so a new shape (tbf
    # -> netem+tbf) starts from a bare device. If the new one then fails, the device is left
    # bare (unshaped), never half-shaped.
    attached = _kinds(_qdiscs(ipr, ifindex))
    if attached and attached != [kind for kind, *_ in tree]:
        _clear(ipr, ifindex)
    for kind, parent, handle, options in tree:
        try:
            ipr.tc("replace", kind, ifindex, handle=handle, parent=parent, **options)
        except NetlinkError as err:
            # A qdisc kind the kernel cannot load: "Specified qdisc kind is unknown", ENOENT.
            if kind == "netem" and err.code == errno.ENOENT:
                raise ShapingError(f"add {kind} qdisc", err.code, message=NETEM_MISSING) from err
            raise ShapingError(f"replace {kind} qdisc on device {ifindex}", err.code) from err


def _clear(ipr: Any, ifindex: int) -> None:
    """Delete the root qdisc (and its children); the device falls back to its default."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        ipr.tc("del", index=ifindex, parent=_TC_H_ROOT)
    except NetlinkError as err:
        # ENOENT: only the default qdisc is there, which cannot be deleted: nothing to do.
        if err.code != errno.ENOENT:
            raise ShapingError(f"delete root qdisc on device {ifindex}", err.code) from err


def read(ipr: Any, ifindex: int) -> Shaping:
    """What the kernel holds on device ``ifindex``: the rate of a tbf and the delay of a netem,
    at the root or as the root's child (whoever attached them). Shaping() when neither."""
    from pyroute2.netlink.rtnl.tcmsg.common import tick_in_usec

    qdiscs = _qdiscs(ipr, ifindex)
    root = qdiscs.get(_TC_H_ROOT)
    if root is None:
        return Shaping()
    found = [root]
    found += [q for q in qdiscs.values() if q["parent"] & 0xFFFF0000 == root["handle"]]
    rate, latency = 0, 0.0
    for q in found:
        options = q.get_attr("TCA_OPTIONS")
        if options is None:
            continue
        if q.get_attr("TCA_KIND") == "tbf":
            rate = options.get_attr("TCA_TBF_PARMS")["rate"] * 8
        elif q.get_attr("TCA_KIND") == "netem":
            # netem reports its delay in psched ticks (64 ns here: /proc/net/psched).
            latency = round(options["delay"] / tick_in_usec) / 1e6
    return Shaping(rate=rate, latency=latency)


_probe_lock = threading.Lock()
_probe_result: tuple[bool, str] | None = None


@off_loop
def netem_available() -> tuple[bool, str]:
    """(True, "") when the kernel can attach netem, else (False, why). Asked once per process.

    Cost: a veth pair in a new network namespace of the calling thread only
    (netlink.scratch), netem attached to it, all gone with the socket: a few ms here (plus
    importing pyroute2 on first use), plus a module load when the kernel builds sch_netem as a
    module. Nothing on the host's devices is touched."""
    global _probe_result
    with _probe_lock:
        if _probe_result is None:
            _probe_result = _probe_netem()
        return _probe_result


def _probe_netem() -> tuple[bool, str]:
    from pyroute2 import NetlinkError

    from pycont.kernel import LinuxKernel
    from pycont.net import netlink

    try:
        with netlink.scratch(LinuxKernel()) as ipr:  # gone with the socket, veth and all
            ipr.link("add", ifname="pcprobe0", kind="veth", peer={"ifname": "pcprobe1"})
            (index,) = ipr.link_lookup(ifname="pcprobe0")
            apply(ipr, index, Shaping(latency=0.001))
            return True, ""
    except ShapingError as err:
        return False, str(err)
    except (NetlinkError, OSError) as err:
        return False, f"probe in a new network namespace: {err}"
