"""The course's chapter helper: what every notebook of the course does the same way.

Each chapter starts with ``course = Chapter("01", needs=...)``: it removes what an interrupted
run of that chapter left behind (containers named ``ch01-…``, and the volumes, images and host
folders the chapter names), prints what this machine allows, and offers ``course.check()`` for
the exercises and ``course.clean()`` for the end. It is the notebook layer: nothing imports it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from pycont.errors import ContainerNotFound, ImageNotFound, PycontError
from pycont.fsutil import remove_tree

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


class Chapter:
    """One chapter's run: its leftovers, what the machine allows, its checks.

    Containers are the chapter's when their names start with ``chNN-``; volumes, images and
    host paths only when named here (they have no prefix convention: ``myapp:2.0``)."""

    def __init__(
        self,
        number: str,
        *,
        needs: Iterable[str] = ("namespaces",),
        volumes: Iterable[str] = (),
        images: Iterable[str] = (),
        paths: Iterable[str] = (),
        also: Callable[[], None] | None = None,
    ) -> None:
        """Remove the leftovers of an interrupted run, then print what this machine allows.

        ``also``: a chapter's own clean-up step (stop a process it started...), run each time
        the chapter cleans up."""
        self.number = number
        self.prefix = f"ch{number}-"
        self.needs = tuple(needs)
        unknown = [n for n in self.needs if n not in NEEDS]
        if unknown:
            raise ValueError(f"chapter {number}: unknown needs {unknown}; known: {list(NEEDS)}")
        self.volumes = tuple(volumes)
        self.images = tuple(images)
        self.paths = tuple(paths)
        self.also = also
        removed = self._remove()
        if removed:
            print("removed what an earlier run of this chapter left:", ", ".join(removed))
        for line in self.allows():
            print(line)

    def __repr__(self) -> str:
        return f"<Chapter {self.number} needs={list(self.needs)}>"

    # -- what this machine allows --------------------------------------------------------------
    def allows(self) -> list[str]:
        """One line per need of this chapter: ✓ or ✗, with the probe's reason."""
        from pycont.kernel.probe import probe

        found = probe()
        lines = []
        for need in self.needs:
            label, test = NEEDS[need]
            ok, reason = test(found)
            lines.append(f"{'✓' if ok else '✗'} {label}: {reason}")
        return lines

    def allowed(self, need: str) -> bool:
        """Whether ``need`` ("namespaces", "root", "cgroups", "overlay", "vm") is met here."""
        from pycont.kernel.probe import probe

        return NEEDS[need][1](probe())[0]

    # -- the chapter's objects -----------------------------------------------------------------
    def containers(self) -> list[str]:
        """Names of this chapter's containers that exist (any status)."""
        from pycont.runtime.container import containers

        return [c.name for c in containers(all=True) if c.name.startswith(self.prefix)]

    def vms(self) -> list[str]:
        """Names of this chapter's VMs that exist (any status)."""
        from pycont.vm.machine import vms

        return [v.name for v in vms(all=True) if v.name.startswith(self.prefix)]

    def left(self) -> dict[str, list[str]]:
        """What of this chapter exists now, by kind; empty lists when it is all gone."""
        from pycont import volumes
        from pycont.images import Store

        refs = {i.reference for i in Store().images()}
        return {
            "containers": self.containers(),
            "vms": self.vms(),
            "volumes": [v for v in volumes.names() if v in self.volumes],
            "images": [r for r in self.images if r in refs],
            "paths": [p for p in self.paths if os.path.lexists(p)],
        }

    def _remove(self) -> list[str]:
        from pycont import volumes
        from pycont.images import Store
        from pycont.runtime.container import containers

        removed = []
        for c in containers(all=True):
            if c.name.startswith(self.prefix):
                with contextlib.suppress(ContainerNotFound):  # a --rm one may go by itself
                    c.remove(force=True)
                    removed.append(c.name)
        from pycont.vm.machine import vms

        for v in vms(all=True):
            if v.name.startswith(self.prefix):
                v.remove(force=True)
                removed.append(f"VM {v.name}")
        if self.also is not None:
            self.also()
        for name in self.volumes:
            if name in volumes.names():
                volumes.remove(name, force=True)
                removed.append(f"volume {name}")
        store = Store()
        for ref in self.images:
            with contextlib.suppress(ImageNotFound):
                store.remove(ref)
                removed.append(f"image {ref}")
        for path in self.paths:
            if os.path.lexists(path):
                remove_tree(path)
                removed.append(path)
        return removed

    def clean(self) -> None:
        """Remove everything of this chapter, and print what is left (nothing, if all went)."""
        try:
            self._remove()
        except PycontError as err:
            print(f"✗ clean-up of chapter {self.number}: {err}")
        left = {kind: names for kind, names in self.left().items() if names}
        if left:
            print(f"✗ left from chapter {self.number}:", left)
        else:
            print(f"✓ nothing is left from chapter {self.number}")

    def check(self, label: str, ok: object, hint: str) -> None:
        """:func:`check`: ``✓ label: correct`` or ``✗ label: not yet — hint: …``."""
        check(label, ok, hint)
