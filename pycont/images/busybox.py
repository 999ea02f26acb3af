"""The ``busybox`` image, built offline from Debian's busybox-static: one layer, made in Python.

One static binary and a symlink per applet (``/bin/sh -> /bin/busybox``) make a complete
userland with no shared libraries: the smallest root a container can run. The layer tar is
built deterministically (entries sorted, numeric owners, every mtime set to the binary's own,
which dpkg takes from the package), so the same busybox-static gives the same layer digest and
the same image id on every machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile

from pycont.errors import ImageNotFound
from pycont.images import oci
from pycont.images.layers import Entry, write_tar
from pycont.images.report import ImageRecord
from pycont.images.store import Store

__all__ = ["BUSYBOX_CANDIDATES", "build", "build_busybox", "busybox_entries", "busybox_version"]

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"
DIRS = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "home": 0o755,
    "proc": 0o755,
    "root": 0o700,
    "sbin": 0o755,
    "sys": 0o755,
    "tmp": 0o1777,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "var": 0o755,
}


def _find_static_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                head = f.read(4096)
            # A dynamically linked ELF names its interpreter (PT_INTERP): "/lib64/ld-linux...".
            if b"ld-linux" not in head and b"/lib/ld-" not in head:
                return path
    raise ImageNotFound(
        "cannot build the busybox image: no static busybox found at "
        f"{' or '.join(BUSYBOX_CANDIDATES)} (install it: apt-get install busybox-static)"
    )


def busybox_version(binary: str) -> str:
    """The package version from busybox's banner: ``BusyBox v1.35.0 (Debian 1:1.35.0-4)``."""
    out = subprocess.run(
        [binary, "--help"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    banner = out[0] if out else ""
    m = re.search(r"\(Debian ([^)]+)\)", banner) or re.search(r"v(\S+)", banner)
    return m.group(1) if m else "unknown"


def busybox_entries(binary: str) -> list[Entry]:
    """The layer's members, sorted so that the tar's bytes depend on busybox alone."""
    mtime = int(os.stat(binary).st_mtime)
    applets = subprocess.run(
        [binary, "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    out: dict[str, Entry] = {}  # one entry per path: the first one given wins

    def add(entry: Entry) -> None:
        out.setdefault(entry.name, entry)

    size = os.path.getsize(binary)
    add(Entry("bin/busybox", tarfile.REGTYPE, 0o755, mtime=mtime, source=binary, size=size))
    for name, text in (("passwd", PASSWD), ("group", GROUP), ("hostname", "busybox\n")):
        add(Entry(f"etc/{name}", tarfile.REGTYPE, 0o644, mtime=mtime, data=text.encode()))
    for d, mode in DIRS.items():
        add(Entry(d, tarfile.DIRTYPE, mode, mtime=mtime))
    for applet in (a.strip("/") for a in applets):
        parent = os.path.dirname(applet)
        while parent:
            add(Entry(parent, tarfile.DIRTYPE, 0o755, mtime=mtime))
            parent = os.path.dirname(parent)
        add(Entry(applet, tarfile.SYMTYPE, 0o777, mtime=mtime, linkname="/bin/busybox"))
    # Sorted by path components: a directory comes before what it holds.
    return sorted(out.values(), key=lambda e: e.name.split("/"))


def build_busybox(store: Store | None = None, ref: str = "busybox:latest") -> ImageRecord:
    """Build the image into the store and name it ``ref``. Same busybox, same image id."""
    binary = _find_static_busybox()
    store = store or Store()
    mtime = int(os.stat(binary).st_mtime)
    version = busybox_version(binary)
    config = oci.new_config(created=mtime, cmd=["sh"], env=[f"PATH={oci.DEFAULT_PATH}"])
    with store.stage() as stage:
        with stage.blobs.writer() as w:
            write_tar(busybox_entries(binary), w)
        oci.add_layer(
            config,
            w.digest,
            created=mtime,
            created_by=f"pycont: busybox-static {version} (offline)",
        )
        layer = oci.descriptor(oci.LAYER, w.digest, w.size)
        return store.add_image(ref, config, [layer], staging=stage)


build = build_busybox  # what pycont.images.resolve() calls for a built-in image
