"""The command server (pycont.cliserver) behind the thin client (pycont.client): a command handed
to it ends exactly as it does when the client runs it itself (the direct path).

Each test has a server folder of its own (PYCONT_CLI_SERVER_DIR), so it never meets another
test's server nor /run/pycont; the servers it started are stopped at its end. Which process ran
a command is read from the kernel: a worker is named ``pycont-cli`` and is the server's child.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from pycont import client, cliserver, cliworker
from tests.helpers import REPO, process_gone, requires, wait_for

pytestmark = requires("root", "overlay")

CLIENT = [sys.executable, "-m", "pycont"]


class Servers:
    """A server folder of the test's own, and the client run against it."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, self.env.get("PYTHONPATH")) if p)
        self.env[client.ENV_DIR] = folder
        self.env.pop(client.ENV_SWITCH, None)

    def env_with(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}

    def popen(self, *args: str, cwd: str = REPO, **kw: object) -> subprocess.Popen[bytes]:
        env = kw.pop("env", self.env)
        return subprocess.Popen([*CLIENT, *args], cwd=cwd, env=env, **kw)  # type: ignore[call-overload]

    def run(
        self, *args: str, cwd: str = REPO, env: dict[str, str] | None = None, stdin: bytes = b""
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*CLIENT, *args],
            cwd=cwd,
            env=env or self.env,
            input=stdin,
            capture_output=True,
            timeout=120,
        )

    def running(self) -> list[dict[str, object]]:
        return cliserver.servers(self.folder)

    def up(self) -> dict[str, object]:
        """Start the server (the first command runs directly and spawns it); its info."""
        self.run("system", "server", "status")
        return wait_for(lambda: self.running() and self.running()[-1], what="a command server")

    def stop(self) -> None:
        for info in self.running():
            os.kill(int(info["pid"]), signal.SIGKILL)
            wait_for(lambda i=info: process_gone(int(i["pid"])), what="the server's end")


@pytest.fixture
def servers() -> Iterator[Servers]:
    folder = tempfile.mkdtemp(prefix="pccli-test-")  # mkdtemp: mode 0700, ours
    s = Servers(folder)
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(folder, ignore_errors=True)


def direct(s: Servers) -> dict[str, str]:
    return s.env_with(**{client.ENV_SWITCH: "0"})


def workers_of(server_pid: int) -> list[int]:
    """The server's children named pycont-cli (proc(5): /proc/PID/task/PID/children)."""
    with open(f"/proc/{server_pid}/task/{server_pid}/children") as f:
        kids = [int(p) for p in f.read().split()]
    found = []
    for pid in kids:
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == cliworker.WORKER_NAME:
                    found.append(pid)
        except OSError:
            continue
    return found


def _in_mask(pid: int, field: str, sig: int) -> bool:
    """proc(5): SigIgn, SigCgt: hexadecimal masks, bit sig-1."""
    with open(f"/proc/{pid}/status") as f:
        mask = next(line for line in f if line.startswith(field + ":")).split()[1]
    return bool(int(mask, 16) >> (sig - 1) & 1)


def ignores(pid: int, sig: int) -> bool:
    return _in_mask(pid, "SigIgn", sig)


def catches(pid: int, sig: int) -> bool:
    return _in_mask(pid, "SigCgt", sig)


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
        with open(f"/proc/{worker}/environ", "rb") as f:
            assert f"{client.ENV_DIR}={servers.folder}".encode() in f.read().split(b"\0")
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
@pytest.mark.parametrize("path", ["server", "direct"])
def test_sigterm_to_the_client_reaches_the_container(
    servers: Servers, path: str, name: str
) -> None:
    server = int(servers.up()["pid"])
    env = servers.env if path == "server" else direct(servers)
    script = 'trap "exit 7" TERM; echo ready; sleep 30 & wait'
    proc = servers.popen(
        "run",
        "--rm",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        script,
        env=env,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
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
    proc = servers.popen(
        "run",
        "--rm",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        script,
        env=env,
        stdout=subprocess.PIPE,
        process_group=0,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
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
        worker = wait_for(lambda: workers_of(pid), what="a worker")[0]
        os.kill(worker, signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL
    finally:
        servers.run("rm", "-f", name)


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
