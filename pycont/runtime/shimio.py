"""What both shims share (:mod:`.shim` runs a container, :mod:`.execshim` a command in one):
the status pipe's writer, the narrating kernel, signal forwarding, the exit status."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable

from pycont import failpoints
from pycont.kernel import LinuxKernel
from pycont.kernel._base import Kernel
from pycont.runtime import protocol
from pycont.runtime import state as st

FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


class Reporter:
    """Typed messages to the caller over the status pipe (:mod:`.protocol`); silent once the
    caller has gone."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, msg: protocol.Message) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, protocol.encode(msg))
        except OSError:
            self.fd = -1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# Paths the narration writes as $CONTAINER, $IMAGE and $ID (the container's id, which also
# names its cgroup), so each line reads at a glance.
_SHORT: list[tuple[str, str]] = []


def set_short_names(cfg: st.ContainerConfig, cdir: str) -> None:
    layers = ((layer, "$IMAGE") for layer in cfg.layers)
    _SHORT[:] = [(cdir, "$CONTAINER"), *layers, (cfg.id, "$ID")]


def shorten(line: str) -> str:
    for old, new in _SHORT:
        line = line.replace(old, new)
    return line


def narrator(rep: Reporter) -> Callable[[str], None]:
    return lambda line: rep.send(protocol.Narration(shorten(line)))


def kernel_for(narrate: bool, rep: Reporter) -> Kernel:
    real = LinuxKernel()
    if not narrate:
        return real
    from pycont.kernel.narrating import NarratingKernel

    return NarratingKernel(real, narrator(rep))


def wait_code(pid: int) -> int:
    """Exit status as a shell reports it: the code, or 128 + the signal that killed it."""
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def injected(step: str) -> str:
    """A failpoint's injected error (pycont.failpoints), "" when none is set at ``step``."""
    try:
        failpoints.hit(step)
    except failpoints.FailpointError as err:
        return str(err)
    return ""


def forward(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
