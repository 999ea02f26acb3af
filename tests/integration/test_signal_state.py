"""A container's command starts with every signal at its default and none blocked, whatever the
process that asked for it had: an ignored signal and the signal mask survive execve(2)
(signal(7)), and a shell cannot trap a signal that was ignored when it started.

Found by running the suite under nohup(1): `pycont kill -s HUP` reached a `trap "exit 4" HUP`
that could not fire, because the container's sh inherited SIGHUP ignored."""

from __future__ import annotations

import signal
import subprocess

import pycont
from tests.helpers import cli, requires

pytestmark = requires("root", "overlay")

SHOW = ["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"]
CLEAN = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"


def _like_nohup() -> None:
    # What nohup(1) and a careless parent leave: SIGHUP ignored, SIGUSR1 blocked.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})


def _cli_under_nohup(*args: str) -> subprocess.CompletedProcess[str]:
    return cli(*args, preexec_fn=_like_nohup)


def test_run_from_a_caller_with_hup_ignored_and_usr1_blocked(name: str) -> None:
    r = _cli_under_nohup("run", "--rm", "--name", name, "busybox", *SHOW)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == CLEAN


def test_a_trap_fires_in_a_container_started_under_nohup(name: str) -> None:
    script = 'trap "exit 4" HUP; kill -HUP $$; sleep 5; exit 9'
    r = _cli_under_nohup("run", "--rm", "--name", name, "busybox", "sh", "-c", script)
    assert (r.returncode, r.stderr) == (4, "")


def test_run_and_exec_through_the_api_fork_server(name: str) -> None:
    # The fork server ignores SIGINT (a notebook's Ctrl-C is not for it); its containers must not.
    assert pycont.run("busybox", SHOW, rm=True, name=name).output == CLEAN
    c = pycont.run("busybox", ["sleep", "60"], detach=True, name=f"{name}-x")
    try:
        r = c.exec(SHOW)
        assert isinstance(r, pycont.ExecResult)
        assert (r.exit_code, r.output) == (0, CLEAN)
    finally:
        c.remove(force=True)
