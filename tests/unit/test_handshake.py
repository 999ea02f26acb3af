"""The start handshake's verdict on real child processes: exec'd, or died before exec.

Each child holds the write end of a close-on-exec pipe, as the container's init does, and
names itself pid1.PRE_EXEC_NAME; the parent reads the pipe to EOF and asks handshake.outcome.
No root, no container: only fork, exec and signals.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from pycont.runtime import handshake, pid1, protocol


def _verdict(child: Callable[[int], None]) -> tuple[protocol.Failed | None, int]:
    """Fork a child that runs ``child(err_w)`` (and never returns); the handshake's outcome
    and the child's exit status."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(err_r)
            pid1.name_self(pid1.PRE_EXEC_NAME)
            child(err_w)
        finally:
            os._exit(99)
    os.close(err_w)
    failed = handshake.outcome(err_r, pid, "the child")
    return failed, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_an_exec_is_a_start_even_if_the_command_ends_at_once() -> None:
    failed, code = _verdict(lambda _w: os.execv("/bin/sh", ["sh", "-c", "exit 3"]))
    assert (failed, code) == (None, 3)


def test_a_command_that_runs_on_is_a_start() -> None:
    failed, code = _verdict(lambda _w: os.execv("/bin/sh", ["sh", "-c", "sleep 0.2; exit 4"]))
    assert (failed, code) == (None, 4)


def test_a_kill_before_exec_is_a_death_with_the_signal() -> None:
    failed, code = _verdict(lambda _w: os.kill(os.getpid(), signal.SIGKILL))
    assert code == -signal.SIGKILL
    assert failed == protocol.Failed(
        "died", 125, "the child was killed by SIGKILL before it could exec its command"
    )


def test_an_exit_before_exec_without_a_word_is_a_death_with_the_code() -> None:
    failed, _code = _verdict(lambda _w: os._exit(7))
    assert failed is not None and failed.error.startswith("the child exited with code 7 before")


def test_a_report_wins_over_the_exit() -> None:
    def report(err_w: int) -> None:
        os.write(err_w, protocol.encode(protocol.Failed("notfound", 127, "exec: nope")))
        os._exit(127)

    failed, code = _verdict(report)
    assert (failed, code) == (protocol.Failed("notfound", 127, "exec: nope"), 127)
