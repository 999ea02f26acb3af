"""Resource limits as typed values: docker's flags parsed once, stored as numbers, not strings.

``--memory 64m --cpus 0.5`` becomes ``Limits(memory=67108864, nano_cpus=500000000)``: the
drivers (:mod:`.v1`, :mod:`.v2`) write these to the kernel, the runtime stores them as JSON.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pycont.cgroups import units
from pycont.cgroups.units import DeviceRate
from pycont.errors import UsageError

__all__ = ["Limits", "Option"]

Option = str | int | float | None


def _text(flag: str, value: Option) -> str | None:
    """The Python API passes ``cpus=0.5`` or ``memory=67108864``: read them as docker's strings."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UsageError(f"invalid {flag} {value!r}: expected a string like docker's flag value")
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Limits:
    """Resource limits as the kernel wants them; ``None`` (or ``()``) = not given: leave as is.

    ``memory_swap`` is docker's memory *plus* swap: -1 = unlimited swap, 0 = docker's default
    (as much swap as memory, where the kernel accounts swap). ``nano_cpus`` 0 = no CPU limit;
    ``pids_limit`` -1 = unlimited."""

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None
    device_read_bps: tuple[DeviceRate, ...] = ()
    device_write_bps: tuple[DeviceRate, ...] = ()
    blkio_weight: int | None = None

    @classmethod
    def from_options(
        cls,
        *,
        memory: Option = None,
        memory_swap: Option = None,
        memory_reservation: Option = None,
        cpus: Option = None,
        cpu_shares: Option = None,
        cpuset_cpus: Option = None,
        pids_limit: Option = None,
        device_read_bps: str | Sequence[str] | None = None,
        device_write_bps: str | Sequence[str] | None = None,
        blkio_weight: Option = None,
        update: bool = False,
        ncpu: int | None = None,
    ) -> Limits:
        """docker's flags (``memory="64m", cpus="0.5"``) to Limits, with docker's checks.

        ``update=True`` is ``docker update``: only what is given changes, and no defaults."""
        mem_t = _text("--memory", memory)
        swap_t = _text("--memory-swap", memory_swap)
        res_t = _text("--memory-reservation", memory_reservation)
        mem = units.parse_memory("--memory", mem_t) if mem_t is not None else None
        swap = units.parse_memory_swap(swap_t) if swap_t is not None else None
        res = units.parse_memory("--memory-reservation", res_t) if res_t is not None else None
        mem, res = mem or None, res or None  # 0 is docker's "not set"
        if not update:
            if swap is not None and swap > 0 and mem is None:
                raise UsageError(
                    f'invalid --memory-swap "{swap_t}": set --memory too '
                    "(You should always set the Memory limit when using Memoryswap limit)"
                )
            if swap is None and mem is not None:
                swap = 0  # docker: "as much swap as memory", resolved by the driver
        if swap == 0 and mem is None:
            swap = None  # --memory-swap 0 is docker's "unset"; without --memory nothing to do
        if swap is not None and swap > 0 and mem is not None and swap < mem:
            raise UsageError(
                f'invalid --memory-swap "{swap_t}": must be at least --memory "{mem_t}" '
                "(it is memory plus swap), or -1 for unlimited swap"
            )
        if res is not None and mem is not None and res > mem:
            raise UsageError(
                f'invalid --memory-reservation "{res_t}": must be at most --memory "{mem_t}" '
                "(a soft limit below the hard one)"
            )
        cpus_t, shares_t = _text("--cpus", cpus), _text("--cpu-shares", cpu_shares)
        cpuset_t, pids_t = _text("--cpuset-cpus", cpuset_cpus), _text("--pids-limit", pids_limit)
        weight_t = _text("--blkio-weight", blkio_weight)
        return cls(
            memory=mem,
            memory_swap=swap,
            memory_reservation=res,
            nano_cpus=units.parse_cpus(cpus_t, ncpu) if cpus_t is not None else None,
            cpu_shares=(units.parse_cpu_shares(shares_t) or None) if shares_t is not None else None,
            cpuset_cpus=units.parse_cpuset(cpuset_t, ncpu) if cpuset_t is not None else None,
            pids_limit=units.parse_pids_limit(pids_t) if pids_t is not None else None,
            device_read_bps=_rates("--device-read-bps", device_read_bps),
            device_write_bps=_rates("--device-write-bps", device_write_bps),
            blkio_weight=(units.parse_blkio_weight(weight_t) or None)
            if weight_t is not None
            else None,
        )

    def merged(self, newer: Limits) -> Limits:
        """These limits after ``docker update`` with ``newer``: what it gives wins."""
        changes = {
            f.name: getattr(newer, f.name)
            for f in dataclasses.fields(self)
            if getattr(newer, f.name) not in (None, ())
        }
        return dataclasses.replace(self, **changes)

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) in (None, ()) for f in dataclasses.fields(self))

    def as_options(self) -> dict[str, Any]:
        """Back to docker's flag values (JSON-able): ``Limits.from_options(**l.as_options())``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value in (None, ()):
                continue
            if f.name == "nano_cpus":
                out["cpus"] = units.format_cpus(value)
            elif f.name.startswith("device_"):
                out[f.name] = [f"{d.path}:{d.rate}" for d in value]
            else:
                out[f.name] = str(value)
        return out

    def to_json(self) -> dict[str, Any]:
        """The limits given, as JSON numbers (lossless, unlike :meth:`as_options`' strings):
        ``Limits.from_json(l.to_json()) == l``. A device rate is ``[path, major, minor, rate]``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value in (None, ()):
                continue
            if f.name in _RATES:
                value = [[d.path, d.major, d.minor, d.rate] for d in value]
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Limits:
        """What :meth:`to_json` wrote (a container's stored config); a field it does not know
        or a value of the wrong type is an error, never silently a limit not applied."""
        if not isinstance(data, Mapping):
            raise ValueError(f"read limits from JSON: expected an object, got {data!r}")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in types:
                raise ValueError(f"read limits from JSON: unknown field {key!r} = {value!r}")
            if value is None:
                continue
            if key in _RATES:
                values[key] = _rates_from_json(key, value)
            elif key == "cpuset_cpus":
                values[key] = _typed(key, value, str)
            else:
                values[key] = _typed(key, value, int)
        return cls(**values)

    def describe(self) -> list[str]:
        """One short line per limit given, for people: ``memory 64MiB``, ``cpus 0.5``."""
        lines = []
        if self.memory is not None:
            lines.append(f"memory {units.format_bytes(self.memory)}")
        if self.memory_swap:
            swap = "unlimited" if self.memory_swap < 0 else units.format_bytes(self.memory_swap)
            lines.append(f"memory+swap {swap}")
        if self.memory_reservation is not None:
            lines.append(f"memory reservation {units.format_bytes(self.memory_reservation)}")
        if self.nano_cpus is not None:
            lines.append(f"cpus {units.format_cpus(self.nano_cpus) if self.nano_cpus else 'any'}")
        if self.cpu_shares is not None:
            lines.append(f"cpu shares {self.cpu_shares}")
        if self.cpuset_cpus is not None:
            lines.append(f"cpuset {self.cpuset_cpus}")
        if self.pids_limit is not None:
            lines.append(f"pids {'unlimited' if self.pids_limit < 0 else self.pids_limit}")
        for kind, rates in (("read", self.device_read_bps), ("write", self.device_write_bps)):
            lines += [f"{kind} {d.path} {units.format_bytes(d.rate)}/s" for d in rates]
        if self.blkio_weight is not None:
            lines.append(f"blkio weight {self.blkio_weight}")
        return lines


_RATES = ("device_read_bps", "device_write_bps")


def _typed(key: str, value: Any, kind: type) -> Any:
    # bool is an int in Python: True is not a limit of 1.
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"read limits from JSON: {key} = {value!r} is not {kind.__name__}")
    return value


def _rates_from_json(key: str, value: Any) -> tuple[DeviceRate, ...]:
    if not isinstance(value, list):
        raise ValueError(f"read limits from JSON: {key} = {value!r} is not a list")
    out = []
    for item in value:
        if not isinstance(item, list | tuple) or len(item) != 4:
            raise ValueError(
                f"read limits from JSON: {key} item {item!r} is not a device rate "
                "[path, major, minor, rate]"
            )
        path, major, minor, rate = item
        out.append(
            DeviceRate(
                _typed(key, path, str),
                _typed(key, major, int),
                _typed(key, minor, int),
                _typed(key, rate, int),
            )
        )
    return tuple(out)


def _rates(flag: str, given: str | Sequence[str] | None) -> tuple[DeviceRate, ...]:
    items = [given] if isinstance(given, str) else list(given or ())
    return tuple(units.parse_device_rate(flag, item) for item in items)
