"""A real distribution base for the tests: Debian bookworm built by mmdebstrap, saved by podman.

``debian_base()`` returns the two archives podman writes of the same image (docker-archive and
oci-archive). It builds them once per snapshot of the package mirror and keeps them in a cache
folder outside the repository (``PYCONT_TEST_CACHE``, default /var/cache/pycont-tests), under a
lock, so concurrent test processes build it once. A build happens in a temporary sibling and is
renamed when complete: a half-built cache is never seen. podman runs with its own storage root
in that temporary folder (tests/peers.py), removed with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests import peers

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
IMAGE = "localhost/pycont-test-debian:bookworm"
# python3 and apt for the tests to run; ping for a file capability (its postinst runs
# setcap(8) from libcap2-bin, else it makes ping set-user-ID): an xattr to compare.
INCLUDE = "python3-minimal,iputils-ping,libcap2-bin"
# apt's copy of the suite's Release file: its Date names the mirror snapshot the build sees.
INRELEASE = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease"


@dataclass(frozen=True)
class DebianBase:
    folder: Path
    docker_archive: Path
    oci_archive: Path
    reference: str
    build_seconds: float  # of the mmdebstrap run that made it (0 when unknown)


def cache_dir() -> Path:
    return Path(os.environ.get("PYCONT_TEST_CACHE", "/var/cache/pycont-tests"))


def snapshot_key() -> str:
    """``bookworm-minbase-YYYYMMDD-<hash of INCLUDE>``: the date of the mirror's Release file
    as apt last fetched it (a new snapshot after ``apt-get update`` means a new base), else
    today's, and which packages it holds."""
    day = datetime.now(UTC).strftime("%Y%m%d")
    with contextlib.suppress(OSError):
        text = Path(INRELEASE).read_text(errors="replace")
        m = re.search(r"^Date: (.+)$", text, re.MULTILINE)
        if m:
            day = datetime.strptime(m.group(1).strip(), "%a, %d %b %Y %H:%M:%S %Z").strftime(
                "%Y%m%d"
            )
    return f"{SUITE}-minbase-{day}-{hashlib.sha256(INCLUDE.encode()).hexdigest()[:8]}"


def _base(folder: Path) -> DebianBase:
    meta = json.loads((folder / "meta.json").read_text())
    return DebianBase(
        folder=folder,
        docker_archive=folder / "docker-archive.tar",
        oci_archive=folder / "oci-archive.tar",
        reference=meta["reference"],
        build_seconds=meta.get("build_seconds", 0.0),
    )


def debian_base() -> DebianBase:
    """The cached base, built first if this snapshot has none (needs root, mmdebstrap, podman:
    installed with apt-get when missing, else the test skips with the reason)."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    os.chmod(cache, 0o755)  # the rootless tests read the archives as uid 1000
    folder = cache / snapshot_key()
    with open(cache / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the second process waits, then finds it built
        if not (folder / "meta.json").exists():
            _build(folder)
        return _base(folder)


def _build(folder: Path) -> None:
    peers.ensure_tools({"mmdebstrap": "mmdebstrap", "podman": "podman"})
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    # podman refuses a runroot path longer than 50 characters: its work folder is in /tmp.
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)  # archives only: no mount below it
        work = stack.enter_context(peers.scratch(Path(tempfile.mkdtemp(prefix="pycont-deb-"))))
        rootfs = work / "rootfs.tar"
        start = time.monotonic()
        peers.run(
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            f"--include={INCLUDE}",
            SUITE,
            rootfs,
            MIRROR,
            timeout=1800,
        )
        seconds = time.monotonic() - start
        with peers.podman(work) as podman:
            podman("import", rootfs, IMAGE)
            for fmt in ("docker-archive", "oci-archive"):
                podman("save", "--format", fmt, "-o", tmp / f"{fmt}.tar", IMAGE)
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        meta = {"reference": IMAGE, "build_seconds": round(seconds, 1), "mirror": MIRROR}
        meta["sizes"] = {f.name: f.stat().st_size for f in sorted(tmp.glob("*.tar"))}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        os.chmod(tmp, 0o755)
        if folder.exists():  # without meta.json: not ours (the rename is atomic)
            shutil.rmtree(folder)
        os.rename(tmp, folder)


if __name__ == "__main__":  # build (or find) the base by hand: python -m tests.distro
    b = debian_base()
    print(json.dumps({**json.loads((b.folder / "meta.json").read_text()), "folder": str(b.folder)}))
