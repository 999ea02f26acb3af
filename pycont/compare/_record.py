"""Recorded figures: a real run on one machine, kept as JSON with its provenance.

Where no VM can boot (no qemu, no kernel), the course still shows real figures: the ones
``python -m pycont.compare --record`` measured and wrote to ``pycont/data/vm_recorded.json``.
They come back as the same result classes, every provenance marked ``recorded=True`` and
carrying the command that produced them; nothing is ever filled in or estimated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from pycont.compare._results import Comparison, Provenance
from pycont.fsutil import write_json
from pycont.vm.errors import VMError

FORMAT = 1


def recorded_path() -> Path:
    """pycont/data/vm_recorded.json, where the package is (package-data ships it)."""
    return Path(str(resources.files("pycont"))) / "data" / "vm_recorded.json"


def to_json(cmp: Comparison, command: str) -> dict[str, Any]:
    return {"format": FORMAT, "command": command, "comparison": dataclasses.asdict(cmp)}


def _decode(cls: Any, value: Any) -> Any:
    """A value of JSON back into ``cls``: dataclasses and tuples of them, recursively."""
    origin = typing.get_origin(cls)
    if origin is tuple:
        inner = typing.get_args(cls)[0]
        return tuple(_decode(inner, v) for v in value)
    if dataclasses.is_dataclass(cls) and isinstance(cls, type):
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        return cls(**{k: _decode(hints[k], v) for k, v in value.items() if k in names})
    return value


def _mark(obj: Any, command: str) -> Any:
    """The same results with every Provenance recorded=True and the producing command."""
    if isinstance(obj, Provenance):
        return dataclasses.replace(obj, recorded=True, command=command)
    if isinstance(obj, tuple):
        return tuple(_mark(x, command) for x in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {
            f.name: _mark(getattr(obj, f.name), command)
            for f in dataclasses.fields(obj)
            if f.init and dataclasses.is_dataclass(getattr(obj, f.name))
        }
        return dataclasses.replace(obj, **changes)
    return obj


def from_json(doc: dict[str, Any]) -> Comparison:
    if doc.get("format") != FORMAT or "comparison" not in doc or not doc.get("command"):
        raise VMError(f"recorded figures: not a format {FORMAT} record with its command")
    try:
        cmp = _decode(Comparison, doc["comparison"])
    except (TypeError, KeyError, AttributeError) as err:
        raise VMError(f"recorded figures: cannot read them back ({err})") from None
    return typing.cast(Comparison, _mark(cmp, doc["command"]))


def recorded(path: str | os.PathLike[str] | None = None) -> Comparison:
    """The figures of a real run (``python -m pycont.compare --record``), marked recorded."""
    where = Path(path) if path is not None else recorded_path()
    try:
        doc = json.loads(where.read_text())
    except FileNotFoundError:
        raise VMError(
            f"no recorded figures at {where}: run python -m pycont.compare --record "
            "on a machine where a VM boots"
        ) from None
    except (OSError, ValueError) as err:
        raise VMError(f"recorded figures at {where}: cannot be read ({err})") from None
    return from_json(doc)


def record(cmp: Comparison, command: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``cmp`` (a live measurement) as the recorded figures; the path written."""
    if cmp.provenance.recorded:
        raise VMError("record: these figures are recorded already; record a live run")
    where = Path(path) if path is not None else recorded_path()
    where.parent.mkdir(parents=True, exist_ok=True)
    write_json(str(where), to_json(cmp, command))
    return where
