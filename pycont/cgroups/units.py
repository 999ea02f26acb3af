"""Docker's flags in, kernel numbers out: every unit and conversion of the cgroup code lives here.

A learner types ``--memory 64m --cpus 0.5``; the kernel wants bytes in ``memory.max`` and a quota
in microseconds in ``cpu.max``. Parsing follows docker's rules (go-units ``RAMInBytes``, the
daemon's range checks), so a docker user's flags mean the same thing here (STYLE rule 6).

Parsers that serve several flags take the flag first (``parse_bytes(flag, text)``); those for one
flag take the text first and the flag as an optional last argument (``parse_cpus(text, ncpu)``).
Every rejection is a :class:`~pycont.errors.UsageError` of one line: the flag, the value as typed,
and what would have been accepted.
"""

from __future__ import annotations

import json
import os
import re
import stat as stat_mod
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from pycont.errors import UsageError

__all__ = [
    "CPU_PERIOD_US",
    "MIN_MEMORY",
    "PIDS_MAX_LIMIT",
    "DeviceRate",
    "blkio_weight_to_io_weight",
    "clamp_shares",
    "cpus_to_quota",
    "format_bytes",
    "format_cpus",
    "parse_blkio_weight",
    "parse_bytes",
    "parse_cpu_shares",
    "parse_cpus",
    "parse_cpuset",
    "parse_device_rate",
    "parse_memory",
    "parse_memory_swap",
    "parse_pids_limit",
    "shares_to_weight",
]

INT64_MAX = 2**63 - 1
# docker's daemon (linuxMinMemory): a smaller limit would OOM-kill the container while it starts.
MIN_MEMORY = 6 * 1024 * 1024
# The CFS bandwidth period docker uses (sched-bwc.rst); the kernel's minimum quota is 1 ms.
CPU_PERIOD_US = 100_000
NANO = 1_000_000_000
# kernel/pid.c: PID_MAX_LIMIT on 64-bit; pids.max refuses anything larger (pids_max_write).
PIDS_MAX_LIMIT = 4 * 1024 * 1024
# cgroup v1 cpu.shares bounds (kernel/sched: MIN_SHARES, MAX_SHARES); the kernel clamps to them.
MIN_SHARES, MAX_SHARES = 2, 262_144

_BYTES_HELP = "expected a size like 64m, 1.5g or 67108864 (units b, k, m, g, t, p; binary)"
_MULTIPLIERS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
# go-units RAMInBytes: digits, an optional fraction, an optional unit, then "b", "i" or "ib"
# (any case; "i" only after a unit). No space before the unit, unlike go-units.
# ASCII only: Python's \d and int() would also take "６４" or "٦٤", which docker does not.
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([kmgtp]?)(ib|i|b)?", re.IGNORECASE | re.ASCII)
_INT = re.compile(r"-?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"([0-9]*)(?:\.([0-9]*))?", re.ASCII)
_CPU_ITEM = re.compile(r"([0-9]+)(?:-([0-9]+))?", re.ASCII)


def _q(text: str) -> str:
    """The value as typed, quoted; control characters escaped so the message stays one line."""
    return json.dumps(text, ensure_ascii=False)


def _bad(flag: str, text: str, why: str) -> UsageError:
    return UsageError(f"invalid {flag} {_q(text)}: {why}")


def _ncpu(ncpu: int | None) -> int:
    # docker counts the CPUs this process may run on (Go's runtime.NumCPU: sched_getaffinity(2)).
    return ncpu if ncpu is not None else len(os.sched_getaffinity(0))


def _int(flag: str, text: str, why: str) -> int:
    if not isinstance(text, str) or not _INT.fullmatch(text) or len(text) > 20:
        raise _bad(flag, str(text), why)
    return int(text)


# ---- sizes ------------------------------------------------------------------------------------


def parse_bytes(flag: str, text: str) -> int:
    """A size in bytes: ``64m`` = ``64MiB`` = ``64mb`` = 67108864; units are powers of 1024."""
    m = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if m is None or (m.group(3) and m.group(3).lower() != "b" and not m.group(2)):
        raise _bad(flag, str(text), _BYTES_HELP)  # "64ib", "64i": "i" needs a unit before it
    whole, _, frac = m.group(1).partition(".")
    whole = whole.lstrip("0") or "0"
    # int() refuses thousands of digits (ValueError): more than 19 is too large anyway, and a
    # size in bytes times at most 2**50 is exact with 60 decimals (a power of 2 has <= 50).
    number = Fraction(f"{whole}.{frac[:60] or 0}") if len(whole) <= 19 else Fraction(INT64_MAX + 1)
    value = int(number * _MULTIPLIERS[m.group(2).lower()])
    if value > INT64_MAX:
        raise _bad(flag, text, f"too large (at most 8191p); {_BYTES_HELP}")
    return value


def parse_memory(flag: str, text: str) -> int:
    """A memory limit: a size of at least 6 MiB, or 0 for no limit (docker's default)."""
    value = parse_bytes(flag, text)
    if 0 < value < MIN_MEMORY:
        raise _bad(
            flag, text, "Minimum memory limit allowed is 6MB (a size of at least 6m, or 0 for none)"
        )
    return value


def parse_memory_swap(text: str, flag: str = "--memory-swap") -> int:
    """docker's --memory-swap: memory plus swap; -1 = unlimited swap, 0 = docker's default."""
    if text == "-1":
        return -1
    try:
        if isinstance(text, str) and text.startswith("-"):
            raise UsageError(text)
        return parse_bytes(flag, text)
    except UsageError:
        raise _bad(flag, str(text), f"{_BYTES_HELP}, or -1 for unlimited swap") from None


def format_bytes(n: int) -> str:
    """67108864 -> "64MiB"; 1610612736 -> "1.5GiB": binary units, as ``docker stats`` prints."""
    if n < 1024:
        return f"{n}B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.4g}{unit}"
    return f"{value / 1024:.4g}PiB"


# ---- CPU --------------------------------------------------------------------------------------


def parse_cpus(text: str, ncpu: int | None = None, flag: str = "--cpus") -> int:
    """``--cpus 0.5`` -> 500000000 nano-CPUs; 0 = no limit. At most 9 decimals, as docker."""
    n = _ncpu(ncpu)
    help_ = "expected a number of CPUs like 0.5 or 1.25, or 0 for no limit"
    if isinstance(text, str) and text.startswith("-") and _DECIMAL.fullmatch(text[1:]):
        raise _bad(flag, text, f"must not be negative; {help_}")
    m = _DECIMAL.fullmatch(text) if isinstance(text, str) else None
    if m is None or not (m.group(1) or m.group(2)):
        raise _bad(flag, str(text), help_)
    whole, frac = m.group(1) or "0", m.group(2) or ""
    if len(frac) > 9:
        raise _bad(flag, text, f"too many decimal places (at most 9: nano-CPU precision); {help_}")
    if len(whole) > 9:
        raise _range_error(flag, text, n)
    nano = int(whole) * NANO + int(frac.ljust(9, "0"))
    if nano != 0 and not (NANO // 100 <= nano <= n * NANO):
        raise _range_error(flag, text, n)
    return nano


def _range_error(flag: str, text: str, n: int) -> UsageError:
    # docker's daemon: "Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available"
    return _bad(
        flag, text, f"range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available"
    )


def cpus_to_quota(nanocpus: int, period: int = CPU_PERIOD_US) -> int:
    """CFS quota in µs per ``period`` (docker: quota = nanocpus * period / 1e9); -1 = no limit."""
    if nanocpus <= 0:
        return -1
    return nanocpus * period // NANO


def format_cpus(nanocpus: int) -> str:
    """500000000 -> "0.5"."""
    whole, frac = divmod(nanocpus, NANO)
    return f"{whole}.{frac:09d}".rstrip("0").rstrip(".") if frac else str(whole)


def parse_cpu_shares(text: str, flag: str = "--cpu-shares") -> int:
    """A relative CPU weight (v1 cpu.shares, default 1024); 0 = docker's default."""
    value = _int(flag, text, "expected a relative weight like 512 or 1024 (0 for the default)")
    if value < 0:
        raise _bad(flag, text, "must not be negative; expected a relative weight like 512")
    return value


def clamp_shares(shares: int) -> int:
    """The kernel keeps cpu.shares within 2..262144; clamp so what we write is what it keeps."""
    return max(MIN_SHARES, min(MAX_SHARES, shares))


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares (2..262144) -> v2 cpu.weight (1..10000), runc's conversion.

    ``1 + ((shares - 2) * 9999) / 262142``: the two ranges are mapped end to end, so the
    default 1024 shares become weight 39 (not v2's default 100)."""
    return 1 + ((clamp_shares(shares) - 2) * 9999) // 262142


def parse_cpuset(text: str, ncpu: int | None = None, flag: str = "--cpuset-cpus") -> str:
    """A CPU list like ``0-1,3`` (cpuset(7) "list format"), each CPU checked to exist.

    Returns it in the kernel's own normalized form, so reading ``cpuset.cpus`` back matches."""
    n = ncpu if ncpu is not None else (os.cpu_count() or 1)  # CPU numbers, online or not
    help_ = f"expected a list of CPUs like 0-1,3 (this machine has CPUs {_ranges(range(n))})"
    if not isinstance(text, str) or not text:
        raise _bad(flag, str(text), help_)
    ids: set[int] = set()
    for item in text.split(","):
        m = _CPU_ITEM.fullmatch(item)
        if m is None or len(item) > 12:
            raise _bad(flag, text, help_)
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise _bad(flag, text, f"range {item} goes backwards; {help_}")
        if hi >= n:
            missing = _ranges(range(max(lo, n), hi + 1))
            raise _bad(flag, text, f"CPU {missing} not available; {help_}")
        ids.update(range(lo, hi + 1))
    return _ranges(sorted(ids))


def _ranges(ids: range | list[int]) -> str:
    out: list[str] = []
    run: list[int] = []
    for i in ids:
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


# ---- pids -------------------------------------------------------------------------------------


def parse_pids_limit(text: str, flag: str = "--pids-limit") -> int:
    """The most processes (and threads) in the container; -1 or 0 = unlimited (returns -1)."""
    help_ = f"expected a number of processes from 1 to {PIDS_MAX_LIMIT}, or -1 (or 0) for unlimited"
    value = _int(flag, text, help_)
    if value in (0, -1):
        return -1
    if not 0 < value <= PIDS_MAX_LIMIT:
        raise _bad(flag, text, help_)
    return value


# ---- block I/O --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRate:
    """One ``--device-read-bps /dev/vda:1mb``: a block device by number, and bytes per second."""

    path: str
    major: int
    minor: int
    rate: int  # bytes per second; 0 removes the limit

    @property
    def device(self) -> str:
        return f"{self.major}:{self.minor}"


def parse_device_rate(
    flag: str, text: str, stat: Callable[[str], os.stat_result] = os.stat
) -> DeviceRate:
    """``/dev/vda:1mb`` -> DeviceRate("/dev/vda", 254, 0, 1048576); the device must exist."""
    help_ = "expected DEVICE:RATE like /dev/sda:1mb (a block device path, then a size per second)"
    path, sep, rate_text = text.partition(":") if isinstance(text, str) else ("", "", "")
    if not sep or not path.startswith("/dev/"):
        raise _bad(flag, str(text), help_)
    try:
        rate = parse_bytes(flag, rate_text)
    except UsageError:
        raise _bad(flag, text, f"bad rate {_q(rate_text)}; {help_}") from None
    try:
        st = stat(path)
    except OSError as err:
        raise _bad(flag, text, f"{path}: {err.strerror}; {help_}") from None
    if not stat_mod.S_ISBLK(st.st_mode):
        raise _bad(flag, text, f"{path} is not a block device; {help_}")
    return DeviceRate(path, os.major(st.st_rdev), os.minor(st.st_rdev), rate)


def parse_blkio_weight(text: str, flag: str = "--blkio-weight") -> int:
    """A relative I/O weight 10..1000 (docker), or 0 for the default."""
    value = _int(flag, text, "expected a weight from 10 to 1000, or 0 for the default")
    if value != 0 and not 10 <= value <= 1000:
        raise _bad(flag, text, "expected a weight from 10 to 1000, or 0 for the default")
    return value


def blkio_weight_to_io_weight(weight: int) -> int:
    """v1 blkio weight (10..1000) -> v2 io.weight (1..10000), runc's conversion."""
    return 1 + (weight - 10) * 9999 // 990
