"""What the command server's tests share: a server folder of the test's own, its servers, and
reading a process's signal state from /proc."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from pycont import client, cliserver, cliworker
from tests.helpers import REPO, process_gone, wait_for

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
