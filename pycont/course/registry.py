"""A registry of the chapter's own: distribution's ``registry serve``, on 127.0.0.1 only.

A fixed port (docker's 5000) on a shared machine may already be another program's: another
run of the chapter, or a registry someone else runs. So the configuration asks for port 0, the
kernel picks a free one, and the port is read back from the kernel itself: the listening socket
that the registry process holds (proc(5): /proc/net/tcp and the process's fds). Before anything
talks to that port, :meth:`LocalRegistry.verify` checks that every socket listening on it is the
registry's: another program's server is refused, never talked to.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request

from pycont import procfs
from pycont.errors import RegistryError

BINARY = "docker-registry"  # Debian's package of the CNCF distribution registry (registry:2)


class LocalRegistry:
    """``docker-registry serve`` on 127.0.0.1, its configuration, storage and log in ``folder``.

    ``port=0`` (the default): a free port, which the kernel picks."""

    def __init__(self, folder: str, port: int = 0) -> None:
        self.folder = folder
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the name to tag images with (``docker tag``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def _config(self) -> str:
        path = os.path.join(self.folder, "config.yml")
        with open(path, "w") as f:
            f.write(
                "version: 0.1\n"
                "log:\n  level: warn\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.folder}/data\n"
                "  delete:\n    enabled: true\n"
                f"http:\n  addr: 127.0.0.1:{self.port}\n"
            )
        return path

    def _log_tail(self) -> str:
        try:
            with open(os.path.join(self.folder, "registry.log"), errors="replace") as f:
                return " ".join(f.read().split())[-300:]
        except OSError:
            return ""

    def start(self, timeout: float = 20.0) -> None:
        """Start it, learn its port, check that the port is its own, wait until it answers."""
        os.makedirs(os.path.join(self.folder, "data"), exist_ok=True)
        wanted = self.port
        with open(os.path.join(self.folder, "registry.log"), "wb") as log:
            self.proc = subprocess.Popen(
                [BINARY, "serve", self._config()],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:
            ports = procfs.listening_ports(self.proc.pid)
            if ports:
                self.port = min(ports)
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                if wanted and procfs.tcp_listeners().get(wanted):
                    raise RegistryError(f"127.0.0.1:{wanted} is taken by another program")
                raise RegistryError(f"{BINARY} did not start: {self._log_tail()}")
            time.sleep(0.05)
        self.verify()
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RegistryError(f"{BINARY} does not answer GET /v2/: {self._log_tail()}")
            time.sleep(0.05)

    def verify(self) -> None:
        """RegistryError unless every socket listening on the port is this registry's."""
        listeners = procfs.tcp_listeners().get(self.port, set())
        if self.proc is None or self.proc.poll() is not None:
            raise RegistryError(f"the registry on {self.host} is not running")
        foreign = listeners - procfs.socket_inodes(self.proc.pid)
        if not listeners or foreign:
            raise RegistryError(
                f"{self.host} is served by another program, not by the registry started here "
                f"(pid {self.proc.pid}): not talking to it"
            )

    def get(self, path: str) -> tuple[int, str]:
        """One GET to the registry's API, once :meth:`verify` agrees: (status, body)."""
        self.verify()
        with urllib.request.urlopen(f"http://{self.host}{path}", timeout=10) as r:
            return int(r.status), r.read().decode()

    def _answers(self) -> bool:
        try:
            return self.get("/v2/")[0] == 200
        except OSError:  # not listening yet (URLError is an OSError)
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; reaped (this process started it)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
