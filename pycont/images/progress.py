"""Progress of a pull or a push: one line per layer, as docker shows it.

An image travels layer by layer; each layer is named by the first 12 hex digits of its digest
and goes ``Downloading 1.2MB/3.4MB`` -> ``Pull complete`` (or ``Pushing`` -> ``Pushed``), or
straight to ``Already exists`` / ``Layer already exists`` when the other side has it.

A pull or push calls, on the thread that called it::

    start(layer, total)     a layer begins (total: its size in bytes, None if unknown)
    advance(layer, n)       n more bytes of it went through
    done(layer, status)     its final status: "Pull complete", "Layer already exists", ...
    note(text)              a line about the whole image ("Digest: sha256:...")
    close()                 nothing more will come

Any object with the first three methods will do (``note`` and ``close`` are optional);
:func:`auto` picks the right one for where it runs: ANSI redrawing in a terminal, plain lines
when the output is a file or a pipe, an ipywidgets bar per layer in a notebook. Only the
thread that made a reporter draws with it: a background thread never prints.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO

from pycont.format import decimal_size

__all__ = [
    "AnsiProgress",
    "NotebookProgress",
    "PlainProgress",
    "Progress",
    "RecordingProgress",
    "auto",
    "in_notebook",
    "short",
]

_VERBS = {"pull": ("Pulling fs layer", "Downloading"), "push": ("Preparing", "Pushing")}
_REDRAW_EVERY = 0.1  # seconds between two redraws of a layer's bar while bytes flow


def short(layer: str) -> str:
    """``sha256:3f57d9401f8d...`` -> ``3f57d9401f8d`` (docker's 12 hex digits)."""
    return layer.split(":", 1)[-1][:12]


class Progress:
    """A reporter that shows nothing; subclass it and override what you need."""

    def start(self, layer: str, total: int | None) -> None:
        pass

    def advance(self, layer: str, n: int) -> None:
        pass

    def done(self, layer: str, status: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class _Layer:
    total: int | None
    current: int = 0
    status: str = ""
    final: bool = False
    drawn_at: float = 0.0


class RecordingProgress(Progress):
    """Keeps every call, for tests and for the course: ``events``, and ``statuses`` by layer."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []
        self.statuses: dict[str, str] = {}
        self.notes: list[str] = []

    def start(self, layer: str, total: int | None) -> None:
        self.events.append(("start", layer, total))

    def advance(self, layer: str, n: int) -> None:
        self.events.append(("advance", layer, n))

    def done(self, layer: str, status: str) -> None:
        self.events.append(("done", layer, status))
        self.statuses[layer] = status

    def note(self, text: str) -> None:
        self.events.append(("note", "", text))
        self.notes.append(text)

    def with_status(self, status: str) -> list[str]:
        return [layer for layer, s in self.statuses.items() if s == status]


class _Lines(Progress):
    """What the text reporters share: per-layer state, and drawing on the owner thread only."""

    def __init__(self, action: str = "pull", stream: TextIO | None = None) -> None:
        if action not in _VERBS:
            raise ValueError(f"progress action {action!r}: expected pull or push")
        self.waiting, self.verb = _VERBS[action]
        self.stream = stream if stream is not None else sys.stdout
        self.layers: dict[str, _Layer] = {}
        self._owner = threading.get_ident()
        self._lock = threading.Lock()

    def _mine(self) -> bool:
        return threading.get_ident() == self._owner

    def text(self, layer: str, columns: int = 120) -> str:
        """The layer's line, its bar narrowed to fit ``columns`` (at most docker's 50)."""
        st = self.layers[layer]
        if st.final or not st.current:
            return f"{short(layer)}: {st.status or self.waiting}"
        size = decimal_size(st.current)
        if not st.total:
            return f"{short(layer)}: {self.verb} {size}"
        head, tail = f"{short(layer)}: {self.verb} ", f" {size}/{decimal_size(st.total)}"
        width = min(50, columns - len(head) - len(tail) - 2)
        if width < 10:
            return head + tail.lstrip()
        filled = min(width, st.current * width // st.total)
        bar = "=" * filled + (">" if filled < width else "") + " " * (width - filled - 1)
        return f"{head}[{bar}]{tail}"

    def start(self, layer: str, total: int | None) -> None:
        with self._lock:
            self.layers[layer] = _Layer(total)
        self._show(layer, new=True)

    def advance(self, layer: str, n: int) -> None:
        with self._lock:
            st = self.layers.setdefault(layer, _Layer(None))
            st.current += n
        self._show(layer, new=False)

    def done(self, layer: str, status: str) -> None:
        with self._lock:
            st = self.layers.setdefault(layer, _Layer(None))
            st.status, st.final = status, True
        self._show(layer, new=False)

    def note(self, text: str) -> None:
        if self._mine():
            self._write(text + "\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _show(self, layer: str, new: bool) -> None:
        raise NotImplementedError


class PlainProgress(_Lines):
    """Plain lines, for a file or a pipe: one when a layer starts, one when it is done."""

    def _show(self, layer: str, new: bool) -> None:
        st = self.layers[layer]
        if self._mine() and (new or st.final):
            self._write(self.text(layer) + "\n")


class AnsiProgress(_Lines):
    """A terminal: one line per layer, redrawn in place (cursor up, erase line: ECMA-48)."""

    def __init__(self, action: str = "pull", stream: TextIO | None = None) -> None:
        super().__init__(action, stream)
        self._row: dict[str, int] = {}  # the line each layer is drawn on
        self._lines = 0  # lines written since the first one

    def note(self, text: str) -> None:
        if self._mine():
            self._write(text + "\n")
            self._lines += 1

    def _show(self, layer: str, new: bool) -> None:
        if not self._mine():
            return  # the owner thread redraws it next time it reports
        st = self.layers[layer]
        now = time.monotonic()
        if not (new or st.final) and now - st.drawn_at < _REDRAW_EVERY:
            return
        st.drawn_at = now
        width = max(20, shutil.get_terminal_size().columns - 1)  # a wrapped line breaks "up N"
        line = self.text(layer, width)[:width]
        row = self._row.get(layer)
        if row is None:
            self._row[layer] = self._lines
            self._lines += 1
            self._write(line + "\n")
            return
        up = self._lines - row
        self._write(f"\x1b[{up}A\r\x1b[2K{line}\x1b[{up}B\r")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython over ZMQ), not in a terminal IPython."""
    if "IPython" not in sys.modules:  # not loaded: not running under IPython at all
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class NotebookProgress(Progress):
    """An ipywidgets bar per layer; when done, the widgets give way to the plain lines, so a
    saved notebook reads well where no widget can be drawn (GitHub, nbval)."""

    def __init__(self, action: str = "pull") -> None:
        import ipywidgets as widgets

        self._w = widgets
        self._text = _Lines(action, stream=sys.stdout)
        self._box = widgets.VBox([])
        self._bars: dict[str, tuple[Any, Any]] = {}
        self._notes: list[str] = []
        self._handle: Any = None
        self._owner = threading.get_ident()

    def _display(self) -> None:
        if self._handle is None and threading.get_ident() == self._owner:
            from IPython.display import display

            self._handle = display(self._box, display_id=True)

    def start(self, layer: str, total: int | None) -> None:
        self._text.layers[layer] = _Layer(total)
        bar = self._w.IntProgress(value=0, min=0, max=max(total or 1, 1), description=short(layer))
        label = self._w.Label(self._text.waiting)
        self._bars[layer] = (bar, label)
        self._box.children = (*self._box.children, self._w.HBox([bar, label]))
        self._display()

    def advance(self, layer: str, n: int) -> None:
        st = self._text.layers.setdefault(layer, _Layer(None))
        st.current += n
        if layer in self._bars:
            bar, label = self._bars[layer]
            bar.value = min(st.current, bar.max)
            of = f"/{decimal_size(st.total)}" if st.total else ""
            label.value = f"{self._text.verb} {decimal_size(st.current)}{of}"

    def done(self, layer: str, status: str) -> None:
        st = self._text.layers.setdefault(layer, _Layer(None))
        st.status, st.final = status, True
        if layer in self._bars:
            bar, label = self._bars[layer]
            bar.value, bar.bar_style, label.value = bar.max, "success", status

    def note(self, text: str) -> None:
        self._notes.append(text)

    def close(self) -> None:
        if threading.get_ident() != self._owner:
            return
        lines = self._notes[:1] + [self._text.text(layer) for layer in self._text.layers]
        summary = "\n".join(lines + self._notes[1:])
        if self._handle is not None:
            self._handle.update({"text/plain": summary}, raw=True)
        elif summary:
            print(summary)
        for row in self._box.children:  # the widgets' comms go; the text stays
            for widget in row.children:
                widget.close()
            row.close()
        self._box.close()


def auto(action: str = "pull", stream: TextIO | None = None) -> Progress:
    """The reporter for where this runs: a notebook (widgets if ipywidgets is there), a
    terminal (ANSI), or a file or pipe (plain lines)."""
    if stream is None and in_notebook():
        try:
            return NotebookProgress(action)
        except ImportError:
            return PlainProgress(action)
    out = stream if stream is not None else sys.stdout
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty():
        return AnsiProgress(action, out)
    return PlainProgress(action, out)
