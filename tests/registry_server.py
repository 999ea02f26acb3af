"""Registries for the tests: the real one (distribution's ``registry serve``) and a tiny fake.

:class:`RegistryServer` runs Debian's ``docker-registry`` (the CNCF distribution registry, the
same program as the ``registry:2`` image) on 127.0.0.1 and a free port, with its storage in a
temporary folder, no auth, deletes enabled. Its access log is how the tests see which requests
it got. It is installed with apt-get when missing (as root); otherwise the tests skip, saying
why. :class:`FakeRegistry` is a few lines of ``http.server`` that serve fixed manifests and
blobs (and can corrupt them, or ask for a token): what a real registry will not do on purpose.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

REGISTRY_PACKAGE = "docker-registry"
REGISTRY_BINARY = "/usr/bin/docker-registry"
_ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')
_POLICY_RC = "/usr/sbin/policy-rc.d"


def install_registry() -> str | None:
    """Make sure the registry program is there; None if it is, else why it cannot be."""
    if os.access(REGISTRY_BINARY, os.X_OK):
        return None
    if os.geteuid() != 0:
        return f"needs {REGISTRY_BINARY} (apt-get install {REGISTRY_PACKAGE}, as root)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Installing the package would start its service (listening on :5000, every interface)
    # where an init system runs; invoke-rc.d asks policy-rc.d first, and 101 means "do not".
    guard = not os.path.exists(_POLICY_RC)
    if guard:
        with open(_POLICY_RC, "w") as f:
            f.write("#!/bin/sh\n# pycont tests: installing, do not start services\nexit 101\n")
        os.chmod(_POLICY_RC, 0o755)
    try:
        cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", REGISTRY_PACKAGE]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:  # perhaps the package lists are missing or stale
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"apt-get install {REGISTRY_PACKAGE} failed: {err}"
    finally:
        if guard:
            os.unlink(_POLICY_RC)
    if out.returncode != 0 or not os.access(REGISTRY_BINARY, os.X_OK):
        last = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"apt-get install {REGISTRY_PACKAGE} failed: {last[0]}"
    return None


def package_version() -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", REGISTRY_PACKAGE], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


class RegistryServer:
    """``docker-registry serve config.yml`` on 127.0.0.1:<free port>; ``stop()`` leaves nothing."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="pycont-registry-")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(self.dir, "registry.log")
        self.command: list[str] = []
        self.pids: list[int] = []  # every registry process started: none may outlive stop()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> str:
        path = os.path.join(self.dir, "config.yml")
        with open(path, "w") as f:
            f.write(
                "version: 0.1\n"
                "log:\n  level: warn\n"  # the access log (one line a request) stays on
                "storage:\n"
                f"  filesystem:\n    rootdirectory: {self.dir}/data\n"
                "  delete:\n    enabled: true\n"
                f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: pycont-tests\n"
            )
        return path

    def start(self, timeout: float = 20.0) -> None:
        """Start it and wait until ``GET /v2/`` answers 200 (three tries for a free port)."""
        for _ in range(3):
            self.port = free_port()
            self.command = [REGISTRY_BINARY, "serve", self._config()]
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            self.pids.append(self.proc.pid)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _get_status(f"http://{self.host}/v2/") == 200:
                    return
                time.sleep(0.05)
            self._end()  # exited (the port was taken meanwhile?) or never answered
        with open(self.log_path, errors="replace") as f:
            tail = f.read()[-500:]
        self.stop()
        raise RuntimeError(f"{REGISTRY_BINARY} did not answer on 127.0.0.1: {tail}")

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request the registry logged, in order."""
        with open(self.log_path, errors="replace") as f:
            return [(m[1], m[2], int(m[3])) for m in map(_ACCESS.search, f) if m]

    def wait_logged(self, check: Callable[[list[tuple[str, str, int]]], bool]) -> None:
        """The access log is written as each request ends: wait (bounded) until it shows."""
        deadline = time.monotonic() + 10
        while not check(self.requests()):
            if time.monotonic() > deadline:
                raise AssertionError(f"registry log: {self.requests()[-5:]}")
            time.sleep(0.02)

    def _end(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        self._end()
        shutil.rmtree(self.dir, ignore_errors=True)


class FakeRegistry:
    """A distribution API in a few lines: ``manifests`` (name:tag or digest -> (bytes, media
    type)) and ``blobs`` (digest -> bytes) are served as given; uploads are kept in ``blobs``
    with a *relative* Location; ``challenge`` answers every request 401 with it."""

    def __init__(
        self,
        manifests: dict[str, tuple[bytes, str]] | None = None,
        blobs: dict[str, bytes] | None = None,
        challenge: str | None = None,
        cut: dict[str, int] | None = None,
    ) -> None:
        self.cut = dict(cut or {})  # digest -> bytes of it sent before the connection closes
        self.manifests = dict(manifests or {})
        self.blobs = dict(blobs or {})
        self.challenge = challenge
        self.requests: list[tuple[str, str]] = []
        self._uploads: dict[str, bytearray] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real registry
            timeout = 5  # a client that stops talking does not hold the server up

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k.replace("_", "-"), v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, status: int, code: str, message: str, **headers: str) -> None:
                body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
                self._send(status, body, Content_Type="application/json", **headers)

            def _route(self) -> None:
                # An upload's status waits for a PATCH still reading its (cut) body.
                uploads = "/blobs/uploads/" in self.path and self.command in ("GET", "PATCH")
                with fake._lock if uploads else contextlib.nullcontext():
                    self._handle()

            def _handle(self) -> None:
                fake.requests.append((self.command, self.path))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if fake.challenge:
                    self._error(
                        401,
                        "UNAUTHORIZED",
                        "authentication required",
                        WWW_Authenticate=fake.challenge,
                    )
                    return
                path = self.path.split("?", 1)[0]
                query = self.path.split("?", 1)[1] if "?" in self.path else ""
                if path == "/v2/":
                    self._send(200, b"{}")
                elif m := re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path):
                    self._manifest(m[1], m[2], body)
                elif m := re.fullmatch(r"/v2/(.+)/blobs/uploads/([^/]*)", path):
                    self._upload(m[1], m[2], query, body)
                elif m := re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]{64})", path):
                    if m[2] in fake.cut and self.command == "GET":
                        self._cut_short(fake.blobs[m[2]], fake.cut[m[2]])
                    elif m[2] in fake.blobs:
                        self._send(200, fake.blobs[m[2]], Docker_Content_Digest=m[2])
                    else:
                        self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
                else:
                    self._error(404, "NOT_FOUND", "not found")

            def _manifest(self, name: str, ref: str, body: bytes) -> None:
                key = ref if ref.startswith("sha256:") else f"{name}:{ref}"
                if self.command == "PUT":
                    media = self.headers.get("Content-Type", "")
                    fake.manifests[key] = (body, media)
                    digest = "sha256:" + hashlib.sha256(body).hexdigest()
                    fake.manifests[digest] = (body, media)
                    self._send(201, Docker_Content_Digest=digest)
                elif key in fake.manifests:
                    data, media = fake.manifests[key]
                    self._send(200, data, Content_Type=media)
                else:
                    self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")

            def _cut_short(self, data: bytes, n: int) -> None:
                """The whole length announced, ``n`` bytes sent, the connection closed."""
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:n])
                self.wfile.flush()
                self.close_connection = True

            def _upload(self, name: str, upload: str, query: str, body: bytes) -> None:
                params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                params = {k: v.replace("%3A", ":").replace("%2F", "/") for k, v in params.items()}
                where = f"/v2/{name}/blobs/uploads/{upload}?state=1"
                if self.command == "POST":
                    if params.get("mount") in fake.blobs:
                        self._send(201, Location=f"/v2/{name}/blobs/{params['mount']}")
                        return
                    uid = uuid.uuid4().hex
                    fake._uploads[uid] = bytearray()
                    self._send(202, Location=f"/v2/{name}/blobs/uploads/{uid}?state=1")
                    return
                if self.command == "GET":  # the upload's status (spec.md)
                    have = len(fake._uploads[upload])
                    self._send(204, Range=f"0-{have - 1}", Location=where)
                    return
                fake._uploads[upload] += body
                if self.command == "PATCH":
                    have = len(fake._uploads[upload])
                    self._send(202, Range=f"0-{have - 1}", Location=where)
                    return
                digest = params["digest"]
                fake.blobs[digest] = bytes(fake._uploads.pop(upload))
                self._send(201, Location=f"/v2/{name}/blobs/{digest}")

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _route

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)
