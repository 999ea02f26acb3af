"""The ``busybox`` image, built offline from Debian's busybox-static.

One static binary and a symlink per applet (``/bin/sh -> busybox``) make a complete userland
with no shared libraries to copy: the smallest root a container can run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

from pycont.errors import ImageNotFound

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


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


def build_busybox(dest: str) -> None:
    """Build the image into ``dest`` (``rootfs/`` + ``config.json``), atomically."""
    binary = _find_static_busybox()
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".build-", dir=parent)
    try:
        root = os.path.join(tmp, "rootfs")
        for d in (
            "bin",
            "sbin",
            "usr/bin",
            "usr/sbin",
            "etc",
            "root",
            "tmp",
            "proc",
            "sys",
            "dev",
            "var",
            "home",
        ):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        os.chmod(os.path.join(root, "root"), 0o700)
        shutil.copy2(binary, os.path.join(root, "bin", "busybox"))
        os.chmod(os.path.join(root, "bin", "busybox"), 0o755)
        applets = subprocess.run(
            [binary, "--list-full"], check=True, capture_output=True, text=True
        ).stdout.split()
        for applet in applets:
            link = os.path.join(root, applet)
            if applet == "bin/busybox" or os.path.lexists(link):
                continue
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink("/bin/busybox", link)
        for name, text in (("passwd", PASSWD), ("group", GROUP), ("hostname", "busybox\n")):
            with open(os.path.join(root, "etc", name), "w") as f:
                f.write(text)
        config = {
            "Cmd": ["sh"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
            "Source": f"{binary} (busybox-static)",
        }
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config, f, indent=1)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, dest)
        except OSError:
            # Another process built it first: theirs is as good as ours.
            if not os.path.isdir(os.path.join(dest, "rootfs")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
