"""Reading a VM's serial console: its command's output, and pycont's marks in between.

qemu writes everything the guest prints on ttyS0 to ``console.log`` in the VM's folder. The
guest's init prints marks on lines of their own (``PYCONT-VM-UP``, ``PYCONT-VM-READY``,
``PYCONT-VM-EXIT <code>``); the rest is the command's output, and, with ``loglevel=1``, only
the kernel's emergencies (a panic, the final "reboot: Power down"). A mark can follow output
that did not end its line (``printf x``): it is found at the end of a line, not only at its start.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

MARK_RE = re.compile(r"PYCONT-VM-([A-Z]+)(?: (.*))?$")
PANIC = "Kernel panic"


@dataclass
class Scan:
    """What a whole console says."""

    output: str = ""
    marks: dict[str, str] = field(default_factory=dict)  # "EXIT" -> "0", "ERROR" -> text
    exit_code: int | None = None
    panic: str = ""  # the "Kernel panic - not syncing: ..." line, when the guest crashed


class Follower:
    """Reads a console file as it grows; :meth:`poll` returns the new output and new marks."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.pending = ""
        self.done = False  # the EXIT mark was seen: what follows is the power-off
        self.panic = ""
        self._decode = codecs.getincrementaldecoder("utf-8")("replace").decode

    def poll(self, final: bool = False) -> tuple[str, dict[str, str]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        self.offset += len(data)
        text = self.pending + self._decode(data, final).replace("\r", "")
        *lines, self.pending = text.split("\n")
        if final and self.pending:
            lines.append(self.pending)
            self.pending = ""
        out: list[str] = []
        marks: dict[str, str] = {}
        for line in lines:
            if PANIC in line and not self.panic:
                self.panic = line[line.index(PANIC) :].strip()
            m = MARK_RE.search(line)
            if m:
                marks.setdefault(m.group(1), (m.group(2) or "").strip())
                before = line[: m.start()]
                if before and not self.done:
                    out.append(before)  # output without its newline, then the mark
                if m.group(1) == "EXIT":
                    self.done = True
                continue
            if not self.done:
                out.append(line + "\n")
        return "".join(out), marks


def scan(path: str) -> Scan:
    """The whole console at once."""
    f = Follower(path)
    output, marks = f.poll(final=True)
    code: int | None = None
    try:
        code = int(marks["EXIT"]) if "EXIT" in marks else None
    except ValueError:
        code = None
    return Scan(output=output, marks=marks, exit_code=code, panic=f.panic)
