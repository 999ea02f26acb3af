"""What a build shows while it runs, and what it leaves: steps, cache hits, sizes, timing.

The lines follow BuildKit's ``--progress plain``: ``#N [stage i/n] INSTRUCTION``, then the
step's output prefixed with its elapsed seconds, then ``#N CACHED`` or ``#N DONE 1.2s``.
``tty`` colours the same lines (BuildKit redraws a panel; a notebook cell cannot, and the
lines read the same in a log). Background threads never print: all of it happens on the
caller's thread.
"""

from __future__ import annotations

import html
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Protocol

from pycont.format import decimal_size

__all__ = ["BuildResult", "Plain", "Progress", "Quiet", "StepResult", "for_mode"]

MODES = ("auto", "plain", "tty", "quiet")


@dataclass(frozen=True)
class StepResult:
    """One instruction of a build, as it ran."""

    number: int  # the step's number in the whole build (#N)
    label: str  # "[build 2/5]"
    text: str  # the instruction after substitution
    cached: bool
    seconds: float
    size: int | None  # bytes of the layer it made; None: config only (an empty layer)


@dataclass
class BuildResult:
    """What ``pycont.build`` made: the image, and each step of the stages it built."""

    id: str  # sha256:... of the image config
    tags: list[str]
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[-1][:12]

    @property
    def cache_hits(self) -> int:
        return sum(s.cached for s in self.steps)

    @property
    def layers(self) -> int:
        return sum(s.size is not None for s in self.steps)

    def summary(self) -> str:
        name = ", ".join(self.tags) or "(untagged)"
        return (
            f"Successfully built {self.short_id} {name}: {len(self.steps)} steps, "
            f"{self.cache_hits} cached, {self.layers} new or reused layers, "
            f"{self.seconds:.1f}s"
        )

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:  # no timings: the same build reads the same in a notebook
        name = ", ".join(self.tags) or "(untagged)"
        return (
            f"<BuildResult {self.short_id} {name}: {len(self.steps)} steps, "
            f"{self.cache_hits} cached>"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                html.escape(s.label),
                html.escape(s.text if len(s.text) < 70 else s.text[:67] + "..."),
                "CACHED" if s.cached else f"{s.seconds:.1f}s",
                "layer" if s.size is not None else "config",
                decimal_size(s.size) if s.size is not None else "0 B",
            )
            for s in self.steps
        )
        return (
            f"<p><b>{html.escape(self.summary())}</b></p>"
            "<table><tr><th>step</th><th>instruction</th><th>cache</th><th>makes</th>"
            f"<th>size</th></tr>{rows}</table>"
        )


class Progress(Protocol):
    def begin(self, number: int, label: str, text: str) -> None: ...
    def output(self, number: int, line: str) -> None: ...
    def end(self, number: int, cached: bool, seconds: float) -> None: ...
    def note(self, text: str) -> None: ...
    def finish(self, result: BuildResult) -> None: ...


class Plain:
    """BuildKit's plain lines on ``out`` (stderr in the CLI, as docker; the cell in a notebook)."""

    def __init__(self, out: IO[str] | None = None, colour: bool = False) -> None:
        self.out = out
        self.colour = colour
        self._started: dict[int, float] = {}

    def _say(self, text: str) -> None:
        out = self.out or sys.stderr
        out.write(text + "\n")
        out.flush()

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def begin(self, number: int, label: str, text: str) -> None:
        self._started[number] = time.monotonic()
        self._say(self._paint(f"#{number} {label} {text}", "1"))

    def output(self, number: int, line: str) -> None:
        t = time.monotonic() - self._started.get(number, time.monotonic())
        self._say(f"#{number} {t:.3f} {line}")

    def end(self, number: int, cached: bool, seconds: float) -> None:
        if cached:
            self._say(self._paint(f"#{number} CACHED", "34"))
        else:
            self._say(self._paint(f"#{number} DONE {seconds:.1f}s", "32"))

    def note(self, text: str) -> None:
        self._say(self._paint(text, "33"))

    def finish(self, result: BuildResult) -> None:
        self._say(f"#{len(result.steps) + 1} writing image {result.id} done")
        for tag in result.tags:
            self._say(f"#{len(result.steps) + 1} naming to {tag} done")
        self._say(result.summary())


class Quiet:
    """``-q``: nothing while it runs (errors still raise)."""

    def begin(self, number: int, label: str, text: str) -> None:
        pass

    def output(self, number: int, line: str) -> None:
        pass

    def end(self, number: int, cached: bool, seconds: float) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def finish(self, result: BuildResult) -> None:
        pass


def for_mode(mode: str, out: IO[str] | None = None) -> Progress:
    """``--progress auto|plain|tty|quiet``: auto is tty on a terminal, plain otherwise."""
    if mode not in MODES:
        from pycont.errors import UsageError

        raise UsageError(f"invalid --progress {mode!r}: accepted values are {', '.join(MODES)}")
    if mode == "quiet":
        return Quiet()
    stream = out or sys.stderr
    if mode == "auto":
        mode = "tty" if stream.isatty() else "plain"
    return Plain(out, colour=mode == "tty")
