#!/usr/bin/env python3
"""Images at real scale: load, push and pull of a Debian base, pycont against skopeo and podman.

The image is the Debian bookworm base the integration tests use (``mmdebstrap --variant=minbase``
plus python3-minimal, imported by podman, saved as a docker-archive: uncompressed layers, as
``docker save`` writes them). Each round, every contestant does the same step on a fresh store
and, for push, a fresh registry (Debian's ``docker-registry``, the CNCF distribution registry, on
127.0.0.1), in an order that rotates between rounds (a Williams design, as ``start_latency.py``):

  load   pycont load -i ARCHIVE              (verify, unpack every layer: a runnable image)
         podman load -i ARCHIVE               (the same, into containers/storage, overlay)
         skopeo copy docker-archive: oci:     (verify and copy blobs; unpacks nothing)
  push   pycont push / podman push / skopeo copy docker-archive: docker://  to an empty
         registry: each compresses the plain layer with gzip on the way, as docker does
  pull   pycont pull / podman pull / skopeo copy docker:// oci:  of what pycont pushed

Every client reaches the registry through a loopback TCP relay that counts the bytes the client
sends, so the report also shows what a **second push of the same image to a new repository**
costs each client: a client that mounts the blobs from the first repository (distribution-spec,
"Mounting a blob from another repository") sends almost nothing.

skopeo keeps a blob-info cache (as root: /var/lib/containers/cache, machine-wide): it may
remember a compressed digest between rounds; that can only help it.

Run as root:  python3 bench/images.py [--rounds 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)
import start_latency as sl  # noqa: E402  (round_orders, pkg_version)

from tests import peers  # noqa: E402
from tests.distro import debian_base  # noqa: E402
from tests.registry_server import RegistryServer  # noqa: E402

TAG = "pycont-bench-images"
PACKAGES = ("podman", "skopeo", "docker-registry", "mmdebstrap", "runc")
TIMEOUT = 900.0
STEPS = ("load", "push", "pull")
CONTESTANTS = ("pycont", "podman", "skopeo")


def log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


# -- a relay that counts what the client sends --------------------------------------------------
class CountingRelay:
    """127.0.0.1:<port> -> the registry; ``sent`` counts the bytes clients sent through it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, up, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if count:
                    with self._lock:
                        self.sent += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@contextlib.contextmanager
def registry() -> Iterator[tuple[RegistryServer, CountingRelay]]:
    reg = RegistryServer()
    reg.start()
    relay = CountingRelay(("127.0.0.1", reg.port))
    try:
        yield reg, relay
    finally:
        relay.close()
        reg.stop()


# -- the contestants ----------------------------------------------------------------------------
class Work:
    """Per-contestant scratch: a fresh store for each step, removed after."""

    def __init__(self, base: str) -> None:
        self.base = base

    def fresh(self, name: str) -> str:
        # Short: podman refuses a runroot path longer than 50 characters.
        return tempfile.mkdtemp(prefix=f"{name[0]}-", dir=self.base)


def sh(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()[-800:]}")
    return took


def pycont_env(root: str) -> dict[str, str]:
    return dict(os.environ, PYCONT_ROOT=root, PYTHONPATH=REPO)


def pycont(root: str, *args: str) -> float:
    return sh([sys.executable, "-m", "pycont", *args], pycont_env(root))


def skopeo_env(root: str) -> dict[str, str]:
    # skopeo keeps a blob-info cache (what it pushed where, the compressed form of a layer);
    # HOME and the cache path per contestant store, so no run learns from another's.
    return dict(os.environ, HOME=root, XDG_DATA_HOME=root)


class Contestant:
    """The three steps, each on fresh state; ``pushed`` is what the registry has after push."""

    def __init__(self, name: str, work: Work, archive: str, ref: str) -> None:
        self.name, self.work, self.archive, self.ref = name, work, archive, ref

    def load(self) -> float:
        root = self.work.fresh(self.name)
        try:
            return self._load(root)
        finally:
            self.cleanup(root)

    def push(self, relay: CountingRelay, repo: str, again: str) -> tuple[float, int, int]:
        """Push to ``repo`` (timed), then the same image to ``again``: (seconds, bytes sent
        by the first push, bytes sent by the second)."""
        root = self.work.fresh(self.name)
        try:
            self._load(root)
            before = relay.sent
            took = self._push(root, relay.host, repo)
            first = relay.sent - before
            self._push(root, relay.host, again)
            return took, first, relay.sent - before - first
        finally:
            self.cleanup(root)

    def pull(self, host: str, repo: str) -> float:
        root = self.work.fresh(self.name)
        try:
            return self._pull(root, host, repo)
        finally:
            self.cleanup(root)

    def cleanup(self, root: str) -> None:
        shutil.rmtree(root, ignore_errors=True)

    def _load(self, root: str) -> float:
        raise NotImplementedError

    def _push(self, root: str, host: str, repo: str) -> float:
        raise NotImplementedError

    def _pull(self, root: str, host: str, repo: str) -> float:
        raise NotImplementedError


class Pycont(Contestant):
    def _load(self, root: str) -> float:
        return pycont(root, "load", "-i", self.archive)

    def _push(self, root: str, host: str, repo: str) -> float:
        pycont(root, "tag", self.ref, f"{host}/{repo}:1")
        return pycont(root, "push", "-q", f"{host}/{repo}:1")

    def _pull(self, root: str, host: str, repo: str) -> float:
        return pycont(root, "pull", "-q", f"{host}/{repo}:1")


class Podman(Contestant):
    """podman with its storage under the step's folder (tests/peers.py: runc, cgroupfs, its
    own network configs; everything it made removed at the end of the step)."""

    def _podman(self, root: str) -> contextlib.AbstractContextManager[peers.Run]:
        return peers.podman(Path(root))

    def _timed(self, root: str, *args: str) -> float:
        with self._podman(root) as podman:
            t0 = time.perf_counter()
            podman(*args, timeout=TIMEOUT)
            return time.perf_counter() - t0

    def load(self) -> float:
        root = self.work.fresh(self.name)
        try:
            return self._timed(root, "load", "-q", "-i", self.archive)
        finally:
            self.cleanup(root)

    def push(self, relay: CountingRelay, repo: str, again: str) -> tuple[float, int, int]:
        root = self.work.fresh(self.name)
        try:
            with self._podman(root) as podman:
                podman("load", "-q", "-i", self.archive, timeout=TIMEOUT)
                before = relay.sent
                t0 = time.perf_counter()
                # podman compresses plain layers with gzip on push, as docker does.
                podman("push", "-q", "--tls-verify=false", self.ref, f"{relay.host}/{repo}:1")
                took = time.perf_counter() - t0
                first = relay.sent - before
                podman("push", "-q", "--tls-verify=false", self.ref, f"{relay.host}/{again}:1")
                return took, first, relay.sent - before - first
        finally:
            self.cleanup(root)

    def pull(self, host: str, repo: str) -> float:
        root = self.work.fresh(self.name)
        try:
            return self._timed(root, "pull", "-q", "--tls-verify=false", f"{host}/{repo}:1")
        finally:
            self.cleanup(root)


class Skopeo(Contestant):
    """skopeo copies images between transports; it never unpacks a layer. Its "load" is a
    copy of the archive into an OCI layout, its "pull" a copy of the registry's blobs into one:
    lower bounds (verify and write the bytes), not the same work as podman's or pycont's."""

    def _load(self, root: str) -> float:
        return sh(
            ["skopeo", "copy", "-q", f"docker-archive:{self.archive}", f"oci:{root}/oci:img"],
            skopeo_env(root),
        )

    def _push(self, root: str, host: str, repo: str) -> float:
        # From the archive, whose layer is a plain tar, as pycont's and podman's stores hold
        # it: skopeo compresses it on the way (gzip), as they do.
        return sh(
            [
                "skopeo",
                "copy",
                "-q",
                "--dest-tls-verify=false",
                f"docker-archive:{self.archive}",
                f"docker://{host}/{repo}:1",
            ],
            skopeo_env(root),
        )

    def _pull(self, root: str, host: str, repo: str) -> float:
        return sh(
            [
                "skopeo",
                "copy",
                "-q",
                "--src-tls-verify=false",
                f"docker://{host}/{repo}:1",
                f"oci:{root}/oci:img",
            ],
            skopeo_env(root),
        )


KINDS: dict[str, type[Contestant]] = {"pycont": Pycont, "podman": Podman, "skopeo": Skopeo}


# -- rounds ------------------------------------------------------------------------------------
def measure(rounds: int, archive: str, ref: str, work: Work) -> dict[str, Any]:
    people = {n: KINDS[n](n, work, archive, ref) for n in CONTESTANTS}
    times: dict[str, dict[str, list[float]]] = {s: {n: [] for n in CONTESTANTS} for s in STEPS}
    second: dict[str, list[int]] = {n: [] for n in CONTESTANTS}
    first: dict[str, list[int]] = {n: [] for n in CONTESTANTS}
    orders = sl.round_orders(list(CONTESTANTS))
    for r in range(rounds):
        order = orders[r % len(orders)]
        log(f"round {r + 1}/{rounds}: {' '.join(order)}")
        for name in order:
            times["load"][name].append(people[name].load())
        for name in order:
            # The first push (timed) to an empty registry, then the same image from the same
            # store to a new repository of that registry: what a client that mounts avoids.
            with registry() as (_reg, relay):
                took, sent, again = people[name].push(relay, f"{TAG}-a", f"{TAG}-b")
                times["push"][name].append(took)
                first[name].append(sent)
                second[name].append(again)
        with registry() as (_reg, relay):  # pull what pycont pushed, from one registry
            seed = work.fresh("seed")
            try:
                people["pycont"]._load(seed)
                people["pycont"]._push(seed, relay.host, f"{TAG}-a")
            finally:
                shutil.rmtree(seed, ignore_errors=True)
            for name in order:
                times["pull"][name].append(people[name].pull(relay.host, f"{TAG}-a"))
    return {"times": times, "first_push_bytes": first, "second_push_bytes": second}


def paired_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def report(res: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"# bench/images.py, {meta['date']}, {meta['cpus']} cpus, kernel {meta['kernel']}",
        f"image: {meta['image']} ({meta['archive_mb']:.1f} MB docker-archive, "
        f"{meta['layers']} layers); rounds: {meta['rounds']}",
        "",
        "| step | pycont (s) | podman (s) | skopeo (s) | pycont/podman | pycont/skopeo |",
        "|---|---|---|---|---|---|",
    ]
    t = res["times"]
    for step in STEPS:
        med = {n: statistics.median(t[step][n]) for n in CONTESTANTS}
        lines.append(
            f"| {step} | {med['pycont']:.2f} | {med['podman']:.2f} | {med['skopeo']:.2f} | "
            f"{paired_ratio(t[step]['pycont'], t[step]['podman']):.2f} | "
            f"{paired_ratio(t[step]['pycont'], t[step]['skopeo']):.2f} |"
        )
    lines += ["", "| bytes the client sent | pycont | podman | skopeo |", "|---|---|---|---|"]
    rows = (("first_push_bytes", "first push"), ("second_push_bytes", "push to a new repository"))
    for key, label in rows:
        vals = {n: statistics.median(res[key][n]) for n in CONTESTANTS}
        lines.append(
            f"| {label} | {vals['pycont'] / 1e6:.2f} MB | {vals['podman'] / 1e6:.2f} MB | "
            f"{vals['skopeo'] / 1e6:.2f} MB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="write the raw results here")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root (podman's storage, mknod of the base's /dev nodes)", file=sys.stderr)
        return 1
    base = debian_base()
    archive, ref = str(base.docker_archive), base.reference
    with tarfile.open(archive) as tar:
        manifest = tar.extractfile("manifest.json")
        layers = len(json.load(manifest)[0]["Layers"]) if manifest else 0
    with peers.scratch(Path(tempfile.mkdtemp(prefix="pcbi-"))) as scratch:
        os.chmod(scratch, 0o755)
        res = measure(a.rounds, archive, ref, Work(os.fspath(scratch)))
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "rounds": a.rounds,
        "image": ref,
        "archive_mb": os.path.getsize(archive) / 1e6,
        "layers": layers,
        "packages": {p: sl.pkg_version(p) for p in PACKAGES},
    }
    print(report(res, meta))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": meta, **res}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
