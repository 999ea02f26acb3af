"""The OCI distribution API over HTTP: one repository of a registry, spoken to anonymously.

``GET /v2/<name>/manifests/<tag>`` and ``GET /v2/<name>/blobs/<digest>`` fetch, ``POST`` then
``PUT /v2/<name>/blobs/uploads/...`` sends a blob, ``PUT .../manifests/<tag>`` names an image
(distribution-spec, spec.md). Plain http only to this machine, as docker allows insecure
registries on loopback; https anywhere else; a registry that asks for a token is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import ipaddress
import json
import ssl
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from urllib.parse import urlencode, urljoin, urlsplit

from pycont.errors import RegistryError
from pycont.images import oci
from pycont.images.blobs import Readable, sha256_of
from pycont.images.reference import Reference

__all__ = ["ACCEPT", "Http", "HttpRegistry", "is_loopback", "upload_url"]

ACCEPT = ", ".join((*oci.MANIFEST_TYPES, *oci.INDEX_TYPES))
TIMEOUT = 60.0  # seconds a socket may wait for the registry (connect, each read)
MAX_MANIFEST = 4 << 20  # distribution refuses bigger manifests; so does pycont
_CHUNK = 1 << 20
UPLOAD_CHUNK = 16 << 20  # bytes a PATCH carries: what a dropped connection may cost again
RESUME_TRIES = 3  # resumptions of one upload before giving up
_USER_AGENT = "pycont/0.1"


def is_loopback(host: str) -> bool:
    """Is ``host[:port]`` this machine? Only those may be spoken to in plain http."""
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def upload_url(request_url: str, location: str, digest: str) -> str:
    """Where to PUT a monolithic upload: the Location the POST answered (absolute or relative
    to the POST's URL, spec.md "Pushing a blob monolithically"), plus ``digest=``."""
    url = urljoin(request_url, location)
    return url + ("&" if urlsplit(url).query else "?") + urlencode({"digest": digest})


def http_error(resp: http.client.HTTPResponse, what: str = "") -> RegistryError:
    """The registry's own words (spec.md "Error Codes"), with the status: one line."""
    body = resp.read(1 << 16)
    messages = []
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        for err in json.loads(body).get("errors") or []:
            messages.append(str(err.get("message") or err.get("code", "")).lower())
    text = "; ".join(m for m in messages if m) or resp.reason.lower()
    if resp.status == 401:  # about the registry, not about one blob
        challenge = resp.getheader("WWW-Authenticate") or ""
        scheme = challenge.split(" ", 1)[0].lower()
        kind = "a token" if scheme == "bearer" else "a password" if scheme == "basic" else "auth"
        return RegistryError(
            f"the registry wants {kind} (HTTP 401, WWW-Authenticate: {challenge or '-'})"
            "; pycont pulls and pushes anonymously only"
        )
    return RegistryError(f"{what + ': ' if what else ''}{text} (HTTP {resp.status})")


class Http:
    """HTTP/1.1 connections to one registry, kept alive between requests."""

    def __init__(self, host: str) -> None:
        self.base = f"{'http' if is_loopback(host) else 'https'}://{host}"
        self._conns: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def _conn(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        conn = self._conns.get((scheme, netloc))
        if conn is None:
            if scheme == "https":
                ctx = ssl.create_default_context()
                conn = http.client.HTTPSConnection(
                    netloc, timeout=TIMEOUT, context=ctx, blocksize=_CHUNK
                )
            elif scheme == "http" and is_loopback(netloc):
                conn = http.client.HTTPConnection(netloc, timeout=TIMEOUT, blocksize=_CHUNK)
            else:
                raise RegistryError(
                    f"refusing {scheme}://{netloc}: plain http is for loopback only"
                )
            self._conns[(scheme, netloc)] = conn
        return conn

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes | Readable | None = None,
        redirects: int = 3,
    ) -> http.client.HTTPResponse:
        """Send; follow redirects of GET and HEAD (blobs often live behind one). The caller
        reads the whole response before the next request (keep-alive)."""
        url = urljoin(self.base + "/", url)
        parts = urlsplit(url)
        conn = self._conn(parts.scheme, parts.netloc)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        hdrs = {"User-Agent": _USER_AGENT, **(headers or {})}
        try:
            try:
                conn.request(method, target, body=body, headers=hdrs)
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()  # the server closed a kept-alive connection: once more, anew
                if not (body is None or isinstance(body, bytes)):
                    raise
                conn.request(method, target, body=body, headers=hdrs)
                resp = conn.getresponse()
        except OSError as err:
            reason = err.strerror.lower() if err.strerror else str(err) or type(err).__name__
            raise RegistryError(f"cannot reach {parts.scheme}://{parts.netloc}: {reason}") from err
        if resp.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD") and redirects:
            location = resp.getheader("Location") or ""
            resp.read()
            return self.request(method, urljoin(url, location), headers, None, redirects - 1)
        return resp

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


class _Restart(Exception):
    """The registry lost an upload: send the blob again from its first byte."""


class _Sent:
    """A request body that counts what went out (http.client reads it in blocks)."""

    def __init__(self, data: bytes, owner: HttpRegistry) -> None:
        self.data, self.pos, self.owner = memoryview(data), 0, owner

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        out = bytes(self.data[self.pos : end])
        self.pos += len(out)
        self.owner.sent += len(out)
        return out


class HttpRegistry:
    """A repository of a registry that speaks the distribution API."""

    def __init__(self, ref: Reference) -> None:
        self.ref = ref
        self.http = Http(ref.registry)
        self.repository = ref.repository
        self.where = self.http.base
        self.sent = 0  # bytes of blobs sent (what a mount saves)
        self.resumed = 0  # uploads resumed after a dropped connection
        self.restarted = 0  # uploads the registry lost, sent again from the start

    def url(self, kind: str, tail: str = "") -> str:
        """``/v2/<name>/manifests/<tag>``, ``/v2/<name>/blobs/<digest>``, ..."""
        return f"/v2/{self.repository}/{kind}/{tail}"

    def manifest(self, tail: str) -> tuple[bytes, str, str | None]:
        resp = self.http.request("GET", self.url("manifests", tail), {"Accept": ACCEPT})
        if resp.status != 200:
            raise http_error(resp)
        data = resp.read(MAX_MANIFEST + 1)
        if len(data) > MAX_MANIFEST:
            self.http.close()
            raise RegistryError(f"manifest {tail} is larger than {MAX_MANIFEST} bytes")
        ctype = resp.getheader("Content-Type")
        return data, oci.media_type(ctype, data), resp.getheader("Docker-Content-Digest")

    def has_blob(self, digest: str) -> bool:
        resp = self.http.request("HEAD", self.url("blobs", digest))
        resp.read()
        if resp.status in (200, 404):
            return resp.status == 200
        raise http_error(resp, f"blob {digest}")

    @contextlib.contextmanager
    def blob(self, digest: str) -> Iterator[Readable]:
        resp = self.http.request("GET", self.url("blobs", digest))
        if resp.status != 200:
            raise http_error(resp, f"blob {digest}")
        try:
            yield resp
        finally:
            if not resp.isclosed():  # stopped early: the connection is mid-body, drop it
                self.http.close()

    def put_blob(self, digest: str, size: int, data: Readable) -> None:
        start = self.url("blobs", "uploads/")
        resp = self.http.request("POST", start, {"Content-Length": "0"}, b"")
        location = resp.getheader("Location")
        if resp.status != 202 or not location:
            raise http_error(resp, f"upload of {digest}")
        resp.read()
        url = upload_url(self.http.base + start, location, digest)
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        resp = self.http.request("PUT", url, headers, data)
        if resp.status != 201:
            raise http_error(resp, f"upload of {digest}")
        resp.read()
        self.sent += size

    def fork(self) -> HttpRegistry:
        """The same repository over a connection of its own (for another thread)."""
        return HttpRegistry(self.ref)

    def mount(self, digest: str, source: str) -> bool:
        """Ask the registry to link ``digest`` from the repository ``source`` into this one
        (spec.md "Mounting a blob from another repository"): True when it did (201). On 202 it
        would rather take an upload: that session is left to expire."""
        query = urlencode({"mount": digest, "from": source})
        resp = self.http.request(
            "POST", self.url("blobs", f"uploads/?{query}"), {"Content-Length": "0"}, b""
        )
        resp.read()
        if resp.status in (201, 202):
            return resp.status == 201
        raise http_error(resp, f"mount of {digest}")

    def send(
        self, opener: Callable[[], AbstractContextManager[Readable]], expected: str | None = None
    ) -> tuple[str, int]:
        """Upload a blob whose digest is known only at its end (a layer being compressed):
        chunked PATCHes with Content-Range (spec.md "Pushing a blob in chunks"), then the
        closing PUT with ``digest=``. A connection dropped mid-chunk is resumed where the
        registry says it got to (GET on the upload: ``Range: 0-<last byte>``); a registry that
        cannot resume it (distribution cancels an upload whose chunk broke off: "blob upload
        invalid") gets it again from the start, from ``opener()`` anew. A few times each.
        Returns the blob's digest and size."""
        restarts = RESUME_TRIES
        while True:
            try:
                with opener() as stream:
                    return self._send_once(stream, expected)
            except _Restart as err:
                if restarts == 0:
                    raise RegistryError(f"upload failed {RESUME_TRIES + 1} times: {err}") from None
                restarts -= 1
                self.restarted += 1

    def _send_once(self, stream: Readable, expected: str | None) -> tuple[str, int]:
        start = self.url("blobs", "uploads/")
        resp = self.http.request("POST", start, {"Content-Length": "0"}, b"")
        location = resp.getheader("Location")
        resp.read()
        if resp.status != 202 or not location:
            raise http_error(resp, "upload")
        url = urljoin(self.http.base + start, location)
        hasher, offset, retries = hashlib.sha256(), 0, RESUME_TRIES
        while chunk := stream.read(UPLOAD_CHUNK):
            hasher.update(chunk)
            sent = 0  # bytes of this chunk the registry has
            while sent < len(chunk):
                try:
                    url = self._patch(url, chunk[sent:], offset + sent)
                    sent = len(chunk)
                except (OSError, http.client.HTTPException, RegistryError) as err:
                    self.http.close()
                    if retries == 0 or isinstance(err, RegistryError) and "HTTP 4" in str(err):
                        raise
                    retries -= 1
                    url, have = self._status(url)
                    if not offset <= have <= offset + len(chunk):
                        raise _Restart(f"the registry has {have} bytes of it") from err
                    sent = have - offset
                    self.resumed += 1
            offset += len(chunk)
        digest = "sha256:" + hasher.hexdigest()
        if expected and digest != expected:
            raise RegistryError(f"blob {expected} changed while it was sent: it is now {digest}")
        final = url + ("&" if urlsplit(url).query else "?") + urlencode({"digest": digest})
        resp = self.http.request("PUT", final, {"Content-Length": "0"}, b"")
        if resp.status != 201:
            raise http_error(resp, f"upload of {digest}")
        resp.read()
        return digest, offset

    def _patch(self, url: str, data: bytes, offset: int) -> str:
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(data)),
            "Content-Range": f"{offset}-{offset + len(data) - 1}",
        }
        resp = self.http.request("PATCH", url, headers, _Sent(data, self))
        if resp.status != 202:
            raise http_error(resp, "upload")
        resp.read()
        return urljoin(url, resp.getheader("Location") or url)

    def _status(self, url: str) -> tuple[str, int]:
        """Where an upload stands: (its URL, the bytes the registry has). spec.md: GET on the
        upload's URL answers 204 with ``Range: 0-<last byte offset>``."""
        resp = self.http.request("GET", url)
        if resp.status != 204:
            raise _Restart(str(http_error(resp, "upload status")))
        resp.read()
        last = (resp.getheader("Range") or "0--1").rpartition("-")[2]
        return urljoin(url, resp.getheader("Location") or url), int(last) + 1

    def put_manifest(self, tag: str, data: bytes, media: str) -> str:
        resp = self.http.request("PUT", self.url("manifests", tag), {"Content-Type": media}, data)
        if resp.status != 201:
            raise http_error(resp, "manifest")
        resp.read()
        return resp.getheader("Docker-Content-Digest") or sha256_of(data)

    def close(self) -> None:
        self.http.close()
