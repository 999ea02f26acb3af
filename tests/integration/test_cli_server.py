"""The command server (pycont.cliserver) behind the thin client (pycont.client): a command handed
to it ends exactly as it does when the client runs it itself (the direct path).

Each test has a server folder of its own (PYCONT_CLI_SERVER_DIR), so it never meets another
test's server nor /run/pycont; the servers it started are stopped at its end. Which process ran
a command is read from the kernel: a worker is named ``pycont-cli`` and is the server's child.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from pycont import client
from tests.helpers import REPO, requires, wait_for
from tests.integration.cli_servers import (
    Servers,
    catches,
    direct,
    ignores,
    workers_of,
)

pytestmark = requires("root", "overlay")


# -- the same outcome as the direct path ------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"],
        ["run", "--rm", "busybox", "nosuchcommand"],  # 127
        ["run", "--rm", "busybox", "/etc/passwd"],  # 126
        ["nosuchverb"],  # 125, argparse's message
        ["run", "--rm", "busybox", "true"],
        ["--version"],  # SystemExit(0) from argparse
    ],
)
def test_exit_code_and_bytes_as_the_direct_path(servers: Servers, args: list[str]) -> None:
    servers.up()
    via_server = servers.run(*args)
    alone = servers.run(*args, env=direct(servers))
    assert (via_server.returncode, via_server.stdout, via_server.stderr) == (
        alone.returncode,
        alone.stdout,
        alone.stderr,
    )


def test_a_command_runs_in_a_worker_of_the_server(servers: Servers, name: str) -> None:
    pid = int(servers.up()["pid"])
    proc = servers.popen(
        "run",
        "--rm",
        "--name",
        name,
        "busybox",
        "sleep",
        "30",
        stdout=subprocess.DEVNULL,
        preexec_fn=lambda: os.umask(0o027),
    )
    try:
        worker = wait_for(lambda: workers_of(pid), what="a worker")[0]
        with open(f"/proc/{worker}/status") as f:
            assert "Umask:\t0027\n" in f.read()  # proc(5): the client's umask
        assert os.readlink(f"/proc/{worker}/cwd") == REPO
        # and with the switch off, the client runs it itself: no new worker
        alone = servers.run("ps", env=direct(servers))
        assert alone.returncode == 0 and workers_of(pid) == [worker]
    finally:
        servers.run("rm", "-f", name)
        proc.wait(60)


def test_stdin_is_piped_to_the_container(servers: Servers) -> None:
    servers.up()
    r = servers.run("run", "--rm", "-i", "busybox", "cat", stdin=b"hi\nthere\n")
    assert (r.returncode, r.stdout) == (0, b"hi\nthere\n")


def test_the_server_keeps_nothing_of_its_first_clients_environment(servers: Servers) -> None:
    # The client that starts the server passes it only the locale, PATH and its own settings:
    # another user's PYCONT_ROOT or token never sits in the server (proc(5): environ).
    servers.run("system", "server", "status", env=servers.env_with(PC_FIRST_CLIENT="secret"))
    info = wait_for(lambda: servers.running() and servers.running()[-1], what="a command server")
    with open(f"/proc/{info['pid']}/environ", "rb") as f:
        env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
    assert b"PC_FIRST_CLIENT" not in env and b"PYCONT_ROOT" not in env
    assert env[client.ENV_DIR.encode()] == servers.folder.encode()
    r = servers.run(
        "run",
        "--rm",
        "-e",
        "PC_NEXT",
        "busybox",
        "sh",
        "-c",
        "echo $PC_NEXT",
        env=servers.env_with(PC_NEXT="two"),
    )
    assert r.stdout == b"two\n"  # a worker still takes its client's environment on


def test_paths_umask_and_environment_are_the_clients(servers: Servers, tmp_path: object) -> None:
    servers.up()
    cwd = tempfile.mkdtemp(prefix="pccli-cwd-")
    try:
        env = servers.env_with(FOO="one")
        r = servers.run("run", "--rm", "-e", "FOO", "busybox", "sh", "-c", "echo $FOO", env=env)
        assert r.stdout == b"one\n"
        r = servers.run(
            "run",
            "--rm",
            "-e",
            "FOO",
            "busybox",
            "sh",
            "-c",
            "echo $FOO",
            env=servers.env_with(FOO="two"),
        )
        assert r.stdout == b"two\n"
        # save -o: relative to the client's folder
        r = servers.run("save", "-o", "img.tar", "busybox", cwd=cwd)
        assert r.returncode == 0, r.stderr
        assert os.path.getsize(os.path.join(cwd, "img.tar")) > 0
        # another PYCONT_ROOT: another store, empty
        empty = tempfile.mkdtemp(prefix="pccli-root-")
        try:
            r = servers.run("images", "-q", env=servers.env_with(PYCONT_ROOT=empty))
            assert (r.returncode, r.stdout) == (0, b"")
            assert servers.run("images", "-q").stdout != b""
        finally:
            shutil.rmtree(empty)
    finally:
        shutil.rmtree(cwd)


# -- signals ------------------------------------------------------------------------------------
def trapping(servers: Servers, name: str, script: str, **kw: object) -> subprocess.Popen[bytes]:
    """``pycont run --rm`` of a shell script that traps a signal, once it printed ``ready``."""
    proc = servers.popen(
        "run", "--rm", "--name", name, "busybox", "sh", "-c", script, stdout=subprocess.PIPE, **kw
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


@pytest.mark.parametrize("path", ["server", "direct"])
def test_sigterm_to_the_client_reaches_the_container(
    servers: Servers, path: str, name: str
) -> None:
    server = int(servers.up()["pid"])
    env = servers.env if path == "server" else direct(servers)
    script = 'trap "exit 7" TERM; echo ready; sleep 30 & wait'
    proc = trapping(servers, name, script, env=env)
    # once the CLI forwards SIGTERM (its attach(); before, SIGTERM ends the CLI, in both paths)
    cli = proc.pid if path == "direct" else workers_of(server)[0]
    wait_for(lambda: catches(cli, signal.SIGTERM), what="the CLI catching SIGTERM")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 7


@pytest.mark.parametrize("path", ["server", "direct"])
def test_ctrl_c_reaches_the_container(servers: Servers, path: str, name: str) -> None:
    """A terminal's ^C: SIGINT to the client's whole process group. Sent once the CLI ignores
    SIGINT (its attach(): before that, ^C interrupts the CLI itself, in both paths)."""
    server = int(servers.up()["pid"])
    env = servers.env if path == "server" else direct(servers)
    script = 'trap "exit 8" INT; echo ready; sleep 30 & wait'
    proc = trapping(
        servers,
        name,
        script,
        env=env,
        process_group=0,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    cli = proc.pid if path == "direct" else workers_of(server)[0]
    wait_for(lambda: ignores(cli, signal.SIGINT), what="the CLI ignoring SIGINT")
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(60) == 8  # the container's trap ran: the terminal's ^C reached it
    left = servers.run("ps", "-a", env=direct(servers))
    assert name.encode() not in left.stdout  # --rm: the container ended and was removed


def test_sigint_ends_logs_follow_with_130(servers: Servers, name: str) -> None:
    servers.up()
    assert (
        servers.run(
            "run", "-d", "--name", name, "busybox", "sh", "-c", "echo hello; sleep 60"
        ).returncode
        == 0
    )
    try:
        proc = servers.popen(
            "logs",
            "-f",
            name,
            stdout=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert proc.stdout is not None and proc.stdout.readline() == b"hello\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
    finally:
        servers.run("rm", "-f", name)


def test_run_d_returns_and_the_container_outlives_the_client(servers: Servers, name: str) -> None:
    servers.up()
    r = servers.run("run", "-d", "--name", name, "busybox", "sleep", "60")
    try:
        assert r.returncode == 0 and len(r.stdout.strip()) == 64
        assert servers.run("inspect", "-f", "{{.State.Status}}", name).stdout == b"running\n"
    finally:
        servers.run("rm", "-f", name)


def test_a_killed_worker_kills_the_client_by_the_same_signal(servers: Servers, name: str) -> None:
    pid = int(servers.up()["pid"])
    proc = servers.popen(
        "run", "--rm", "--name", name, "busybox", "sleep", "30", stdout=subprocess.DEVNULL
    )
    try:
        # Killed once it runs the command: a worker killed before the client's go ran
        # nothing, and the client rightly runs the command itself (client.follow).
        wait_for(
            lambda: servers.run("inspect", "-f", "{{.State.Status}}", name).stdout == b"running\n",
            what=f"{name} to run",
        )
        [worker] = workers_of(pid)  # the inspects' workers were reaped before they answered
        os.kill(worker, signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL
    finally:
        servers.run("rm", "-f", name)
