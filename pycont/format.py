"""How pycont prints sizes and times, as docker prints them (its go-units package).

Parsing docker's units (``64m``, ``--cpus 0.5``) is :mod:`pycont.cgroups.units`; this is the
other direction, for tables and displays.
"""

from __future__ import annotations

import time


def decimal_size(n: float) -> str:
    """docker's HumanSize: 3 significant digits, decimal units (``1.2kB``, ``2.15MB``)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(float(f"{n:.3g}")) < 1000:  # 999_999 rounds to 1e+03kB: say 1MB
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}TB"


def binary_size(n: float) -> str:
    """docker's BytesSize: 4 significant digits, binary units (``1.539MiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.4g}{unit}"
        n /= 1024
    return f"{n:.4g}TiB"


def ago(ts: float, now: float | None = None) -> str:
    """How long ago ``ts`` was, as docker ps says it: ``5 seconds``, ``2 hours``."""
    d = max(0.0, (time.time() if now is None else now) - ts)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if d >= size:
            n = int(d // size)
            return f"{n} {unit}{'s' if n > 1 else ''}"
    n = int(d)
    return "Less than a second" if n < 1 else f"{n} second{'s' if n > 1 else ''}"
