"""Debian's package tools, as the VM code uses them: query, refresh, download, install.

The VM's kernel, qemu and the static busybox of its initramfs all come from apt; this module
is the one place that runs ``apt-get``, ``apt-cache`` and ``dpkg``, so the modules that need a
package (``kernel``, ``initramfs``, ``qemu``) import it and not each other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pycont.vm.errors import VMError

# No debconf questions; untranslated output, which the callers parse (apt-cache show).
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run one apt or dpkg command, its output captured; VMError if the tool is missing."""
    try:
        return subprocess.run(
            cmd, cwd=cwd, env=APT_ENV, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as err:
        raise VMError(f"{cmd[0]} not found: the VM's files come from Debian's apt") from err


_updated = False


def apt_update() -> None:
    """``apt-get update``, at most once per process."""
    global _updated
    if _updated:
        return
    res = run(["apt-get", "update", "-q"])
    _updated = True
    if res.returncode != 0:
        raise VMError(f"apt-get update failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")


def installed(package: str) -> bool:
    """Whether dpkg lists ``package`` as installed (dpkg-query(1) ``${Status}``)."""
    res = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return "install ok installed" in res.stdout


def apt_install(packages: Sequence[str]) -> None:
    """``apt-get install`` (no recommends) the packages not installed yet; root only."""
    missing = [p for p in packages if not installed(p)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise VMError(f"{' '.join(missing)} missing and cannot be installed (needs root + apt)")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    res = run(cmd)
    if res.returncode != 0:  # stale or missing package lists: refresh once and retry
        apt_update()
        res = run(cmd)
    if res.returncode != 0:
        raise VMError(f"apt-get install {' '.join(missing)} failed:\n{res.stderr[-2000:]}")
