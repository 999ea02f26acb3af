"""The messages the shim sends its caller over the status pipe: one typed dataclass each.

One JSON object per line: any number of :class:`Narration` lines (``--narrate``), then
:class:`Started` with the container's pid or :class:`Failed` with docker's exit code, and at the
end :class:`Exited`. The same :class:`Failed` travels from the container's first process to the
shim over the close-on-exec error pipe, when something fails before execve(2).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal


@dataclass(frozen=True)
class Narration:
    """One system call the narrating kernel made, for the reader to see (``--narrate``)."""

    line: str
    type: Literal["narration"] = "narration"


@dataclass(frozen=True)
class Started:
    """The command runs: ``pid`` is its host pid (PID 1 inside, for ``run``)."""

    pid: int
    type: Literal["started"] = "started"


@dataclass(frozen=True)
class Failed:
    """It did not start. ``kind``: setup, clone, notfound, noexec, state, cgroup, setns,
    internal; ``code``: docker's exit code (125 pycont's fault, 126 not executable, 127 not
    found)."""

    kind: str
    code: int
    error: str
    type: Literal["failed"] = "failed"


@dataclass(frozen=True)
class Exited:
    """The command ended with ``code`` (128 + N when signal N killed it); ``oom_killed``: the
    kernel's OOM killer struck in its cgroup (told here too, since --rm removes the record)."""

    code: int
    oom_killed: bool = False
    type: Literal["exited"] = "exited"


Message = Narration | Started | Failed | Exited
_TYPES: dict[str, type[Message]] = {
    "narration": Narration,
    "started": Started,
    "failed": Failed,
    "exited": Exited,
}


def encode(msg: Message) -> bytes:
    """One line of JSON, newline included."""
    return (json.dumps(asdict(msg)) + "\n").encode()


def decode(raw: bytes | str) -> Message:
    """The message of one line; ValueError if it is not one."""
    doc = json.loads(raw)
    cls = _TYPES.get(str(doc.get("type"))) if isinstance(doc, dict) else None
    if cls is None:
        raise ValueError(f"pycont shim protocol: not a message: {raw!r}")
    return cls(**doc)
