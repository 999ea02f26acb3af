"""Captured output with a cap: a container that floods its pipe cannot sink the caller.

A container can write gigabytes; a notebook kernel holding them all would be OOM-killed. So a
capture keeps the first bytes and the last few, drains the pipe to the end (the container never
blocks on a full pipe) and counts what it did not keep. ``%%container`` shows output the same way.
"""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Callable
from typing import IO, AnyStr, Generic

from pycont.format import decimal_size
from pycont.fsutil import wait_readable

MAX_OUTPUT = 4 << 20  # bytes of a container's output that pycont.run keeps by default
OUTPUT_TAIL = 4096  # bytes of the end kept after the cut, shown after the notice
_CHUNK = 65536


class OutputCap(Generic[AnyStr]):
    """Keeps the first ``head`` units of a stream (all of it when None) and the last ``tail``
    after them; counts the rest. Works on bytes (pipes) and on text (a VM's console)."""

    def __init__(self, empty: AnyStr, head: int | None, tail: int = OUTPUT_TAIL) -> None:
        self.head = head
        self.tail_size = tail
        self.total = 0  # units seen
        self.tail: AnyStr = empty  # the last units past ``head``, at most ``tail`` of them
        self._kept_head = 0

    def feed(self, chunk: AnyStr) -> AnyStr:
        """Count ``chunk``; return the part of it that falls within the head (to keep or show
        now). The part past the head only refreshes the tail."""
        room = len(chunk) if self.head is None else max(0, self.head - self.total)
        self.total += len(chunk)
        keep = chunk[:room]
        self._kept_head += len(keep)
        if len(keep) < len(chunk) and self.tail_size:
            self.tail = (self.tail + chunk[room:])[-self.tail_size :]
        return keep

    @property
    def dropped(self) -> int:
        """Units neither in the head nor in the tail: the ones nobody will see."""
        return self.total - self._kept_head - len(self.tail)

    def finish(self: OutputCap[bytes], decode: Callable[..., str], what: str, limit: str) -> str:
        """The end of a capped byte stream as text: the tail when nothing was lost, else the
        notice and the tail. ``decode``: the incremental decoder the head went through."""
        if not self.dropped:  # nothing lost: the tail follows the head
            return decode(self.tail, final=True)
        # The tail starts anywhere in a character: decoded alone, a cut one becomes U+FFFD.
        return (
            decode(b"", final=True) + self.notice(what, limit) + self.tail.decode(errors="replace")
        )

    def notice(self, what: str, limit: str, unit: str = "bytes") -> str:
        """The line that stands for the dropped part, e.g. ``[pycont] output throttled: 97,000
        more bytes (97MB) were not shown (cell budget 1,048,576 bytes); the last 4,096:``."""
        size = f" ({decimal_size(self.dropped)})" if unit == "bytes" else ""
        return (
            f"\n[pycont] output throttled: {self.dropped:,} more {unit}{size} were not {what} "
            f"({limit}); the last {len(self.tail):,}:\n"
        )


def read_capped(
    stream: IO[bytes], max_output: int | None = MAX_OUTPUT, deadline: float | None = None
) -> tuple[str, bool]:
    """Read ``stream`` to EOF, keeping at most ``max_output`` bytes (None: all): the first ones
    and the last :data:`OUTPUT_TAIL`, with a notice between them naming how much was dropped.

    Returns (the text, False), or (what was read so far, True) once ``time.monotonic()`` passes
    ``deadline``: the caller then kills the writer."""
    if max_output is not None and max_output < 0:
        raise ValueError(f"max_output={max_output}: expected a number of bytes >= 0, or None")
    tail = OUTPUT_TAIL if max_output is None else min(OUTPUT_TAIL, max_output // 2)
    cap = OutputCap(b"", None if max_output is None else max_output - tail, tail)
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    parts: list[str] = []
    fd = stream.fileno()
    timed_out = False
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not wait_readable(fd, left):
                timed_out = True
                break
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            break
        if kept := cap.feed(chunk):
            parts.append(decode(kept))
    limit = "" if max_output is None else f"max_output={max_output:,}"  # None drops nothing
    parts.append(cap.finish(decode, "kept", limit))
    return "".join(parts), timed_out
