"""The course's chapter helper: what every notebook of the course does the same way.

Each chapter starts with ``course = Chapter("01", needs=...)``: it gives the run a pycont root
of its own (:mod:`pycont.course.session`: another run of the same chapter on this machine never
sees its containers, images, volumes or folders), removes what an interrupted run of the chapter
left behind, prints what this machine allows, and offers ``course.check()`` for the exercises
and ``course.clean()`` for the end. It is the notebook layer: nothing imports it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pycont.course.session import Session, base_root, reclaim
from pycont.errors import PycontError
from pycont.kernel.probe import lab_note

__all__ = ["NEEDS", "Chapter", "check", "upper_dir", "wait_for"]

# What a chapter may need, and how to tell from the probe (pycont.probe()) whether it is here.
NEEDS: dict[str, tuple[str, Callable[[Any], tuple[bool, str]]]] = {
    "namespaces": (
        "namespaces",
        lambda p: (p.mode in ("root", "rootless"), p.mode_summary),
    ),
    "root": ("root", lambda p: (p.root.ok, p.root.reason)),
    "cgroups": ("cgroup limits", lambda p: (p.cgroup_writable.ok, p.cgroup_writable.reason)),
    "overlay": ("overlay", lambda p: (p.overlay.ok, p.overlay.reason)),
    "vm": ("a VM (qemu)", lambda _p: _vm_available()),
}


def _vm_available() -> tuple[bool, str]:
    from pycont.vm.launch import available

    return available()


def check(label: str, ok: object, hint: str) -> None:
    """Print ``✓ label: correct`` or ``✗ label: not yet — hint: …``.

    ``ok`` is a value or a function called now; whatever the learner's cells hold, this never
    raises: an exception while checking is a "not yet" that names the exception. It returns
    nothing, so that a check cell shows its verdict line and no ``True``/``False`` under it."""
    try:
        verdict = bool(ok() if callable(ok) else ok)
    except Exception as err:  # a check cell must print a verdict, whatever the answer cells hold
        verdict, hint = False, f"{hint} (checking raised {type(err).__name__}: {err})"
        from pycont import degrade

        guard = degrade.current()
        if guard is not None:  # nothing could run here: not the learner's mistake
            print(f"skipped: needs {guard[0]}; here: {guard[1]} ({label} cannot be checked)")
            return
    print(f"✓ {label}: correct" if verdict else f"✗ {label}: not yet — hint: {hint}")


def wait_for(test: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll ``test`` until it is true or ``timeout`` seconds have passed; its last verdict.

    A detached container needs a moment to do its work: a cell waits for what it shows."""
    deadline = time.monotonic() + timeout
    while not test() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(test())


def upper_dir(container: Any) -> str:
    """The host folder of a container's read/write layer (overlay's upperdir, chapter 04)."""
    return str(container.inspect()["GraphDriver"]["Data"]["UpperDir"])


# This process's sessions, by chapter number: running a chapter's setup cell again in the same
# kernel starts over in the same session (its tag, and so its paths, stay the same).
_mine: dict[str, Session] = {}
_at_exit = False


def _session(number: str, also: Callable[[], None] | None) -> tuple[Session, list[str]]:
    """This process's session of chapter ``number``, emptied, and what was removed: what
    its earlier run here left, and the sessions of the chapter whose owner has gone."""
    global _at_exit
    mine = _mine.get(number)
    if mine is not None and os.path.exists(mine.dir):
        if also is not None:  # its globals are those of the earlier run, in this kernel
            also()
        removed = mine.empty()
    else:
        mine, removed = None, []
    removed += reclaim(number, mine.base if mine else base_root())
    if mine is None:
        mine = _mine[number] = Session.create(number, base_root())
    if not _at_exit:  # a kernel that exits normally takes its sessions with it
        atexit.register(_remove_mine)
        _at_exit = True
    return mine, removed


def _close(session: Session) -> None:
    """Forget a removed session; pycont works in the root it was made in again."""
    if _mine.get(session.number) is session:
        del _mine[session.number]
    if os.environ.get("PYCONT_ROOT") == session.dir:
        os.environ["PYCONT_ROOT"] = session.base


def _remove_mine() -> None:
    for session in list(_mine.values()):
        with contextlib.suppress(PycontError, OSError):
            session.remove()
        # Also because the magics' exit handler runs after this one (atexit: last in, first
        # out): it must not make the session's folder again, looking for containers there.
        _close(session)


class Chapter:
    """One chapter's run: its own pycont root, what the machine allows, its checks.

    Everything the chapter makes is in its session (:attr:`root`): containers, VMs, networks
    (their bridges on the host), volumes, images, and the host folders it asks :meth:`scratch`
    for. Clean-up takes back exactly that, and never touches what another run, or anyone
    else, made."""

    def __init__(
        self,
        number: str,
        *,
        needs: Iterable[str] = ("namespaces",),
        also: Callable[[], None] | None = None,
    ) -> None:
        """Open the chapter's session, remove what an interrupted run left, then print what
        this machine allows. From here on, pycont (and ``%pycont``) work in the session.

        ``also``: a chapter's own clean-up step (stop a process it started...), run each time
        the chapter cleans up."""
        self.number = number
        self.prefix = f"ch{number}-"
        self.needs = tuple(needs)
        unknown = [n for n in self.needs if n not in NEEDS]
        if unknown:
            raise ValueError(f"chapter {number}: unknown needs {unknown}; known: {list(NEEDS)}")
        self.also = also
        self.session, removed = _session(number, also)
        # An environment variable: the CLI that %pycont starts, and the shims, inherit it.
        os.environ["PYCONT_ROOT"] = self.session.dir
        if removed:
            print("removed what an earlier run of this chapter left:", ", ".join(removed))
        for line in self.allows():
            print(line)
        self._guard()

    def __repr__(self) -> str:
        return f"<Chapter {self.number} needs={list(self.needs)} root={self.root}>"

    @property
    def root(self) -> str:
        """The session's folder: the chapter's ``PYCONT_ROOT``."""
        return self.session.dir

    def scratch(self, name: str, short: bool = False) -> str:
        """A host folder for the chapter, in its session (its path; not made here). ``short``:
        made now under /tmp instead, for a program that limits a path's length (podman: 50
        characters for its runroot); the session's clean-up removes it all the same."""
        return self.session.scratch(name, short=short)

    def adopt(self, pid: int) -> None:
        """A process the chapter started (a registry): the clean-up ends it, and so does the
        next run of the chapter if this kernel dies first."""
        self.session.adopt(pid)

    # -- what this machine allows --------------------------------------------------------------
    def allows(self) -> list[str]:
        """One line per need of this chapter: ✓ or ✗, with the probe's reason."""
        from pycont.kernel.probe import probe

        found = probe()
        note = lab_note()  # in the lab VM (or where it could not start): said first, once
        lines = [f"→ {note}"] if note else []
        for need in self.needs:
            label, test = NEEDS[need]
            ok, reason = test(found)
            reason = reason.replace(f"; {note}", "") if note else reason  # said once, above
            lines.append(f"{'✓' if ok else '✗'} {label}: {reason}")
        return lines

    def _guard(self) -> None:
        """Where a need is not met, every later cell that fails says so in one line instead of
        a traceback (pycont.degrade), so that "Run All" reads the whole chapter."""
        from pycont import degrade
        from pycont.kernel.probe import probe

        found = probe()
        for need in self.needs:
            label, test = NEEDS[need]
            ok, reason = test(found)
            if not ok and degrade.install(label, reason):
                print(
                    f"→ without {label} here, each experiment below that needs it prints "
                    "one 'skipped' line; the pictures in the text show what it does on a "
                    "machine that allows it"
                )
                return
        degrade.remove()

    @contextlib.contextmanager
    def guarded(self) -> Iterator[None]:
        """The rest of the setup cell, guarded as the later cells are: where this chapter
        cannot run its experiments, an exception is one "skipped" line; elsewhere it raises."""
        from pycont import degrade

        try:
            yield
        except Exception as err:
            guard = degrade.current()
            if guard is None:
                raise
            degrade.report(guard[0], guard[1], err)

    def allowed(self, need: str) -> bool:
        """Whether ``need`` ("namespaces", "root", "cgroups", "overlay", "vm") is met here."""
        from pycont.kernel.probe import probe

        return NEEDS[need][1](probe())[0]

    # -- the chapter's objects -----------------------------------------------------------------
    def containers(self) -> list[str]:
        """Names of this chapter's containers that exist (any status)."""
        return self.session.contents()["containers"]

    def left(self) -> dict[str, list[str]]:
        """What the chapter's session holds now, by kind; empty lists when it is all gone."""
        return self.session.contents()

    def clean(self) -> None:
        """Remove everything of this chapter, its session folder too, and print what is left
        (nothing, if all went). pycont then works in the root the session was made in again;
        running the setup cell again opens a new session."""
        try:
            if self.also is not None:
                self.also()
            self.session.remove()
        except (PycontError, OSError) as err:  # the session stays open: the next try redoes it
            print(f"✗ clean-up of chapter {self.number}: {err}")
        else:
            _close(self.session)
        left = {kind: names for kind, names in self.left().items() if names}
        if left:
            print(f"✗ left from chapter {self.number}:", left)
        else:
            print(f"✓ nothing is left from chapter {self.number}")

    def check(self, label: str, ok: object, hint: str) -> None:
        """:func:`check`: ``✓ label: correct`` or ``✗ label: not yet — hint: …``."""
        check(label, ok, hint)
