"""pycont's exceptions, one tree.

Every error pycont raises on purpose derives from :class:`PycontError`. Errors that come from
a system call keep their errno by also deriving from :class:`OSError`::

    PycontError
    ├── UsageError            bad input from the user (flags, names, values); CLI exit 125
    ├── ImageNotFound         IMAGE does not resolve to a root filesystem; CLI exit 125
    ├── ImageInUse            rmi of an image that containers use (without force)
    ├── CorruptBlob           a stored blob is missing or does not hash to its digest
    ├── LayerError            a layer archive is unsafe (writes outside the root) or broken
    ├── VolumeNotFound        no volume by that name
    ├── ArchiveError          an image archive (save/load) is not one, is broken or unsafe
    ├── RegistryError         a pull or push failed (refused, unreachable, bad digest); exit 1
    ├── ContainerNotFound     no container by that name or id; CLI exit 125
    ├── NetworkNotFound       no network by that name or id; CLI exit 125
    ├── NetworkError          a network could not be made, joined or removed (in use, no
    │                         address left, a kernel without veth or bridge); CLI exit 125
    ├── NameConflict          a container already has that name; CLI exit 125
    ├── InvalidState          an illegal lifecycle transition (e.g. exec into a stopped container)
    ├── ContainerTimeout(TimeoutError)  run(timeout=...) ran out: the container was killed
    ├── StartError            the container could not start; carries ``exit_code``
    │   ├── CommandNotFound   the command does not exist in the container (exit 127)
    │   └── CommandNotExecutable  it exists but cannot be executed (exit 126)
    └── KernelError(OSError)  a syscall failed: names the operation, the object and errno
        └── Unsupported       the machine does not allow it (no user namespaces, ...)

The CLI prints ``str(err)`` as one line and exits with ``err.exit_code``.
"""

from __future__ import annotations

import errno as _errno
import os


class PycontError(Exception):
    """Base of every error pycont raises on purpose."""

    exit_code: int = 125

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback: user errors read as one line.
        return [f"{type(self).__name__}: {self}"]


class UsageError(PycontError):
    """Bad input: a flag, a name or a value that pycont does not accept."""


class ImageNotFound(PycontError):
    """The image reference does not resolve to a root filesystem."""


class ImageInUse(PycontError):
    """The image cannot be removed: containers use it (force to untag it anyway)."""


class CorruptBlob(PycontError):
    """A blob is missing, or its content does not hash to its name."""


class LayerError(PycontError):
    """A layer archive is unsafe or broken (or an upper dir cannot become one)."""


class VolumeNotFound(PycontError):
    """No volume by that name."""


class ArchiveError(PycontError):
    """An image archive is not one, is broken, or is unsafe; the message names file and member."""


class RegistryError(PycontError):
    """A pull or push failed: the registry said no, could not be reached, or sent content
    that does not match its digest. One line, naming the operation and the image."""

    exit_code = 1  # as docker pull/push


class ContainerNotFound(PycontError):
    """No container has that name or id."""


class NetworkNotFound(PycontError):
    """No network has that name or id."""


class NetworkError(PycontError):
    """A network could not be made, joined or removed; the message says why."""


class NameConflict(PycontError):
    """The name is already used by another container."""


class InvalidState(PycontError):
    """The container's current status does not allow the operation."""


class ContainerTimeout(PycontError, TimeoutError):
    """``pycont.run(timeout=...)`` ran out: the container was killed. ``output`` holds what it
    wrote until then (capped as ``.output`` is), ``container`` the container, if still there."""

    def __init__(self, message: str, container: object = None, output: str = "") -> None:
        super().__init__(message)
        self.container = container
        self.output = output


class StartError(PycontError):
    """The container could not be started; nothing of it is left behind."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CommandNotFound(StartError):
    """The command does not exist inside the container (docker's exit code 127)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 127)


class CommandNotExecutable(StartError):
    """The command exists but cannot be executed (docker's exit code 126)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 126)


class KernelError(PycontError, OSError):
    """A system call failed. ``errno`` and ``filename`` are set as for OSError."""

    def __init__(self, op: str, err: int, target: str | None = None, detail: str = "") -> None:
        OSError.__init__(self, err, os.strerror(err), target)
        self.op = op
        self.detail = detail

    def __str__(self) -> str:
        what = f"{self.op} {self.filename}" if self.filename else self.op
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        extra = f" ({self.detail})" if self.detail else ""
        return f"{what}: {self.strerror} [{name}]{extra}"


class Unsupported(KernelError):
    """The machine refuses something pycont needs; the message says what and why."""
