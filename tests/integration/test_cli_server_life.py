"""The command server's life: replaced when killed, never reached from another tree, refused
in an unsafe folder, gone when idle, `pycont system server`, and what stays direct."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from pycont import client
from tests.helpers import REPO, process_gone, requires, wait_for
from tests.integration.cli_servers import (
    CLIENT,
    Servers,
    direct,
)

pytestmark = requires("root", "overlay")


# -- the server's life ----------------------------------------------------------------------------
def test_a_killed_server_is_replaced_transparently(servers: Servers) -> None:
    first = servers.up()
    os.kill(int(first["pid"]), signal.SIGKILL)
    wait_for(lambda: process_gone(int(first["pid"])), what="the server's end")
    sock = str(first["socket"])
    assert os.path.exists(sock)  # left behind, refusing connections
    r = servers.run("run", "--rm", "busybox", "echo", "still")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"still\n", b"")
    second = wait_for(lambda: servers.running() and servers.running()[-1], what="a new server")
    assert second["pid"] != first["pid"] and second["socket"] == sock


def test_a_killed_server_not_yet_reaped_is_not_listed(tmp_path: Path) -> None:
    """A server whose client has gone is init's child; killed, it stays a zombie, with its
    name, until init reaps it: no longer a server."""
    from pycont import cliserver

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # named as a server, then waits for its end; never returns into pytest
        try:
            with open("/proc/self/comm", "w") as f:
                f.write(cliserver.SERVER_NAME)
            os.read(r, 1)
        finally:
            os._exit(0)
    try:
        (tmp_path / "cli-test.json").write_text(json.dumps({"pid": pid, "started": 1.0}))
        listed = lambda: [i["pid"] for i in cliserver.servers(str(tmp_path))]  # noqa: E731
        wait_for(lambda: listed() == [pid], what="its name")
        os.write(w, b"x")
        wait_for(lambda: process_gone(pid), what="its end")  # a zombie: not reaped yet
        assert listed() == []
    finally:
        os.close(w)
        os.close(r)
        os.waitpid(pid, 0)


def test_another_tree_never_reaches_a_stale_server(servers: Servers) -> None:
    """An edited copy of the package has another key: a server of its own."""
    first = servers.up()
    copy = tempfile.mkdtemp(prefix="pccli-tree-")
    try:
        shutil.copytree(
            os.path.join(REPO, "pycont"),
            os.path.join(copy, "pycont"),
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        env = servers.env_with(PYTHONPATH=copy)
        servers.run("--version", cwd=copy, env=env)
        both = wait_for(lambda: len(servers.running()) == 2 and servers.running(), what="2")
        assert {str(i["package"]) for i in both} == {
            os.path.join(REPO, "pycont"),
            os.path.join(copy, "pycont"),
        }
        # edit a file of the copy: its key changes again, a third server answers it
        os.utime(os.path.join(copy, "pycont", "format.py"))
        r = servers.run("run", "--rm", "busybox", "echo", "edited", cwd=copy, env=env)
        assert (r.returncode, r.stdout) == (0, b"edited\n")
        keys = wait_for(lambda: len(servers.running()) == 3 and servers.running(), what="3")
        assert len({i["key"] for i in keys}) == 3 and first["key"] in {i["key"] for i in keys}
    finally:
        servers.stop()
        shutil.rmtree(copy)


@pytest.mark.parametrize("unsafe", ["mode", "owner", "symlink"])
def test_an_unsafe_folder_means_the_direct_path(servers: Servers, unsafe: str) -> None:
    folder = servers.folder
    if unsafe == "mode":
        os.chmod(folder, 0o755)
    elif unsafe == "owner":
        os.chown(folder, 65534, 65534)
    else:
        real = folder + "-real"
        os.rename(folder, real)
        os.symlink(real, folder)
    try:
        r = servers.run("run", "--rm", "busybox", "echo", "direct")
        assert (r.returncode, r.stdout) == (0, b"direct\n")
        assert not any(n.endswith(".sock") for n in os.listdir(folder))
        assert servers.running() == []
    finally:
        if unsafe == "symlink":
            os.unlink(folder)
            os.rename(folder + "-real", folder)


def test_failpoints_and_the_switch_mean_the_direct_path(servers: Servers) -> None:
    for extra in ({client.ENV_SWITCH: "0"}, {"PYCONT_FAILPOINTS": "no.such-step=error"}):
        r = servers.run("--version", env=servers.env_with(**extra))
        assert (r.returncode, r.stdout) == (0, b"pycont 0.1.0\n")
    assert os.listdir(servers.folder) == []  # no server started


def test_an_idle_server_exits_and_removes_its_socket(servers: Servers) -> None:
    servers.env[client.ENV_IDLE] = "0.5"
    info = servers.up()
    assert info["idle"] == 0.5
    wait_for(lambda: process_gone(int(info["pid"])), what="the idle server's exit")
    assert not os.path.exists(str(info["socket"]))
    assert servers.running() == []


def test_system_server_status_and_stop(servers: Servers) -> None:
    info = servers.up()
    status = servers.run("system", "server", "status")
    assert status.returncode == 0
    text = status.stdout.decode()
    for label, value in (("socket", info["socket"]), ("pid", info["pid"]), ("key", info["key"])):
        assert f"{label}:" in text and str(value) in text
    with open(f"/proc/{info['pid']}/comm") as f:
        assert f.read() == "pycont-cli-serv\n"  # pycont-cli-server, cut to 15 bytes
    stop = servers.run("system", "server", "stop", env=direct(servers))
    assert (stop.returncode, stop.stdout) == (0, f"stopped server {info['pid']}\n".encode())
    assert process_gone(int(info["pid"])) and not os.path.exists(str(info["socket"]))
    r = servers.run("system", "server", "status", env=direct(servers))
    assert r.stdout == f"no command server in {servers.folder}\n".encode()


def test_stop_through_the_server_itself(servers: Servers) -> None:
    """`system server stop` run by a worker of that server: it ends once the worker did."""
    info = servers.up()
    stop = servers.run("system", "server", "stop")
    assert (stop.returncode, stop.stdout) == (0, f"stopped server {info['pid']}\n".encode())
    wait_for(lambda: process_gone(int(info["pid"])), what="the server's end")


@pytest.mark.skipif(not shutil.which("script"), reason="needs script(1) for a terminal")
def test_with_a_controlling_terminal_run_stays_direct(servers: Servers) -> None:
    """pycont has no -t: an attached container shares the caller's terminal (/dev/tty), which
    a worker in the server's session could not give it; so `run` stays in the client."""
    info = servers.up()
    cmd = [*CLIENT, "run", "--rm", "busybox", "sh", "-c", "echo hi > /dev/tty && echo tty=$?"]
    r = subprocess.run(
        ["script", "-qefc", shlex.join(cmd), "/dev/null"],
        env=servers.env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    assert (r.returncode, r.stdout.split()) == (0, [b"hi", b"tty=0"])
    assert servers.running() == [info]  # and the server is still the one it was


def test_the_workers_signal_state_is_the_clients(servers: Servers) -> None:
    """A caller under nohup(1): the worker has SIGHUP ignored and SIGUSR1 blocked as the client
    had, the container neither (test_signal_state), and nothing else (glibc's 32 and 33)."""
    servers.up()

    def like_nohup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})

    show = ["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"]
    r = subprocess.run(
        [*CLIENT, "run", "--rm", "busybox", *show],
        env=servers.env,
        cwd=REPO,
        capture_output=True,
        preexec_fn=like_nohup,
        timeout=120,
    )
    assert (r.returncode, r.stdout) == (
        0,
        b"SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
    )


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv(1) to drop a capability")
def test_a_client_with_fewer_capabilities_never_reaches_a_fuller_server(servers: Servers) -> None:
    """A worker has its server's credentials: a client whose bounding set lacks CAP_CHOWN must
    not have its container made by a server that has it (nor by the one it starts itself and
    then meets, which has its own, reduced set)."""
    full = servers.up()
    for _ in range(2):
        r = subprocess.run(
            [
                "setpriv",
                "--bounding-set",
                "-chown",
                *CLIENT,
                "run",
                "--rm",
                "--network",
                "none",
                "busybox",
                "grep",
                "CapBnd",
                "/proc/self/status",
            ],
            cwd=REPO,
            env=servers.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        assert int(r.stdout.split()[1], 16) & 1 == 0, r.stdout  # CAP_CHOWN is bit 0
    keys = {str(s["key"]) for s in servers.running()}
    assert str(full["key"]) in keys
