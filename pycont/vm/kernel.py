"""Debian's generic kernel for the VM: downloaded (never installed), unpacked and cached.

``ensure_kernel()`` finds the package ``linux-image-amd64`` points to today
(``apt-cache depends``; one ``apt-get update`` when the lists are empty), fetches it with
``apt-get download`` into the cache, unpacks it with ``dpkg -x`` and pulls the uncompressed
``vmlinux`` out of the bzImage: qemu boots that ELF through its PVH entry, which saves the
4-5 s the xz decompressor costs under TCG. The next call finds it all in the cache.

Cache layout (default ``/var/cache/pycont/vm``, ``PYCONT_VM_CACHE`` overrides)::

    <cache>/linux-image-6.1.0-56-amd64_6.1.158-1/
        kernel.json                 what KernelFiles holds (written last: the "ready" mark)
        vmlinux                     uncompressed ELF kernel
        x/boot/vmlinuz-<version>    the package's own files (dpkg -x)
        x/lib/modules/<version>/
        linux-image-....deb

Offline (no package lists, no mirror), the newest kernel already in the cache is used.
"""

from __future__ import annotations

import fcntl
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pycont.vm.apt import apt_update
from pycont.vm.apt import run as _apt
from pycont.vm.errors import VMError

DEFAULT_CACHE = "/var/cache/pycont/vm"
META_PACKAGE = "linux-image-amd64"
KEEP_KERNELS = 2  # cached kernels kept: the current one and the one before


def default_cache_dir() -> Path:
    return Path(os.environ.get("PYCONT_VM_CACHE") or DEFAULT_CACHE)


@dataclass(frozen=True)
class KernelFiles:
    """An unpacked Debian kernel package, ready for qemu."""

    version: str  # uname -r of the guest, e.g. "6.1.0-56-amd64"
    package: str  # "linux-image-6.1.0-56-amd64"
    package_version: str  # the .deb's Version, e.g. "6.1.158-1"
    vmlinux: Path  # uncompressed ELF (PVH entry): what boot() loads
    vmlinuz: Path  # the package's bzImage, for machines that want it
    modules_dir: Path  # .../lib/modules/<version>
    config: Path  # the kernel's build config (boot/config-<version>)
    _index: dict[str, Path] = field(default_factory=dict, compare=False, repr=False)

    def is_builtin(self, name: str) -> bool:
        """True when module ``name`` is compiled into the kernel (modules.builtin)."""
        builtin = self.modules_dir / "modules.builtin"
        if not builtin.exists():
            return False
        want = _norm(name)
        return any(_module_name(line) == want for line in builtin.read_text().split())

    def module_path(self, name: str) -> Path:
        """The .ko / .ko.xz / .ko.zst file of module ``name`` (``-`` and ``_`` are the same)."""
        if not self._index:
            for path in (self.modules_dir / "kernel").rglob("*.ko*"):
                self._index[_module_name(path.name)] = path
        try:
            return self._index[_norm(name)]
        except KeyError:
            raise VMError(f"kernel {self.version} has no module {name!r}") from None

    def modules(self, names: Iterable[str]) -> list[Path]:
        """Module files for ``names`` and everything they depend on, in insmod order.

        Dependencies come from each module's own ``.modinfo`` (the package ships no
        modules.dep: depmod makes it at install time). Built-in modules are left out.
        """
        order: list[Path] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            key = _norm(name)
            if key in seen:
                return
            seen.add(key)
            if self.is_builtin(key):
                return
            path = self.module_path(key)
            for dep in module_depends(read_module(path)):
                visit(dep)
            order.append(path)

        for name in names:
            visit(name)
        return order

    def config_value(self, option: str) -> str | None:
        """``y``, ``m``, a value, or None (not set) for CONFIG_<option> of this kernel."""
        key = option if option.startswith("CONFIG_") else f"CONFIG_{option}"
        for line in self.config.read_text().splitlines():
            if line.startswith(key + "="):
                return line.split("=", 1)[1]
        return None


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _module_name(filename: str) -> str:
    base = os.path.basename(filename)
    return _norm(base.split(".ko", 1)[0])


def read_module(path: Path) -> bytes:
    """A module file's ELF bytes, decompressed when the package ships it as .ko.xz/.ko.gz."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data, format=lzma.FORMAT_XZ)
    if path.name.endswith(".gz"):
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    if path.name.endswith(".zst"):
        # Python 3.11 has no zstd; the zstd tool does (Debian 12 ships .ko.xz, not .zst).
        try:
            return subprocess.run(
                ["zstd", "-dc", str(path)], check=True, capture_output=True
            ).stdout
        except (OSError, subprocess.CalledProcessError) as err:
            raise VMError(f"cannot decompress {path}: {err}") from err
    return data


def module_depends(elf: bytes) -> list[str]:
    """The ``depends=`` entry of a module's ``.modinfo`` ELF section (what modinfo prints)."""
    info = elf_section(elf, ".modinfo")
    for entry in info.split(b"\0"):
        if entry.startswith(b"depends="):
            value = entry[len(b"depends=") :].decode()
            return [d for d in value.split(",") if d]
    return []


def elf_section(elf: bytes, wanted: str) -> bytes:
    """The bytes of section ``wanted`` of a little-endian ELF64 file."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise VMError("not a little-endian ELF64 file")
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def header(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", elf, shoff + i * shentsize
        )
        return name, offset, size

    _, str_off, str_size = header(shstrndx)
    names = elf[str_off : str_off + str_size]
    for i in range(shnum):
        name, offset, size = header(i)
        if names[name : names.index(b"\0", name)].decode() == wanted:
            return elf[offset : offset + size]
    return b""


def extract_vmlinux(vmlinuz: Path, out: Path) -> None:
    """Write the uncompressed ELF kernel held inside a bzImage (xz or gzip payload)."""
    data = vmlinuz.read_bytes()
    i = data.find(b"\xfd7zXZ\x00")
    if i >= 0:
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[i:])
    else:
        i = data.find(b"\x1f\x8b\x08\x00")
        if i < 0:
            raise VMError(f"{vmlinuz}: neither an xz nor a gzip payload found")
        elf = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[i:])
    if elf[:4] != b"\x7fELF":
        raise VMError(f"{vmlinuz}: the payload is not an ELF kernel")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(elf)
    tmp.rename(out)


# --- apt -----------------------------------------------------------------------------------


def _depends_of_meta() -> str | None:
    out = _apt(["apt-cache", "depends", META_PACKAGE]).stdout
    m = re.search(r"Depends:\s*(linux-image-\d\S*)", out)
    return m.group(1) if m else None


def current_package() -> tuple[str, str]:
    """(package, version) of the kernel ``linux-image-amd64`` depends on now."""
    pkg = _depends_of_meta()
    if pkg is None:
        apt_update()
        pkg = _depends_of_meta()
    if pkg is None:
        raise VMError(f"apt-cache knows no {META_PACKAGE} (even after apt-get update)")
    show = _apt(["apt-cache", "show", "--no-all-versions", pkg]).stdout
    m = re.search(r"^Version:\s*(\S+)", show, re.M)
    if not m:
        raise VMError(f"apt-cache show {pkg}: no Version")
    return pkg, m.group(1)


# --- cache -----------------------------------------------------------------------------------


def _entry_name(package: str, version: str) -> str:
    return f"{package}_{version.replace(':', '%3a')}"


def _load(entry: Path) -> KernelFiles | None:
    try:
        meta = json.loads((entry / "kernel.json").read_text())
    except (OSError, ValueError):
        return None
    files = KernelFiles(
        version=meta["version"],
        package=meta["package"],
        package_version=meta["package_version"],
        vmlinux=entry / "vmlinux",
        vmlinuz=entry / meta["vmlinuz"],
        modules_dir=entry / meta["modules_dir"],
        config=entry / meta["config"],
    )
    if not (files.vmlinux.is_file() and files.modules_dir.is_dir()):
        return None
    return files


def cached_kernels(cache_dir: Path | str | None = None) -> list[KernelFiles]:
    """Ready kernels in the cache, newest first (by when they were unpacked)."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if not cache.is_dir():
        return []
    entries = sorted(
        (e for e in cache.iterdir() if (e / "kernel.json").is_file()),
        key=lambda e: (e / "kernel.json").stat().st_mtime,
        reverse=True,
    )
    return [k for k in map(_load, entries) if k is not None]


def _fetch(cache: Path, package: str, version: str) -> KernelFiles:
    work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=cache))
    try:
        os.chmod(work, 0o777)  # apt-get download drops to the _apt user where it can
        res = _apt(["apt-get", "download", f"{package}={version}"], cwd=work)
        debs = list(work.glob(f"{package}_*.deb"))
        if res.returncode != 0 or not debs:
            raise VMError(f"apt-get download {package}={version} failed:\n{res.stderr[-2000:]}")
        res = _apt(["dpkg", "-x", str(debs[0]), str(work / "x")])
        if res.returncode != 0:
            raise VMError(f"dpkg -x {debs[0].name} failed:\n{res.stderr[-2000:]}")
        vmlinuz = next((work / "x" / "boot").glob("vmlinuz-*"), None)
        if vmlinuz is None:
            raise VMError(f"{debs[0].name} holds no boot/vmlinuz-*")
        kver = vmlinuz.name.removeprefix("vmlinuz-")
        modules = work / "x" / "lib" / "modules" / kver
        if not modules.is_dir():  # merged /usr in later packages
            modules = work / "x" / "usr" / "lib" / "modules" / kver
        extract_vmlinux(vmlinuz, work / "vmlinux")
        meta = {
            "version": kver,
            "package": package,
            "package_version": version,
            "vmlinuz": str(vmlinuz.relative_to(work)),
            "modules_dir": str(modules.relative_to(work)),
            "config": f"x/boot/config-{kver}",
            "deb": debs[0].name,
        }
        (work / "kernel.json").write_text(json.dumps(meta, indent=1) + "\n")
        os.chmod(work, 0o755)
        final = cache / _entry_name(package, version)
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    loaded = _load(final)
    assert loaded is not None
    return loaded


def _prune(cache: Path, keep: KernelFiles) -> None:
    kernels = cached_kernels(cache)
    keep_dirs = {keep.vmlinux.parent} | {k.vmlinux.parent for k in kernels[:KEEP_KERNELS]}
    for k in kernels:
        if k.vmlinux.parent not in keep_dirs:
            shutil.rmtree(k.vmlinux.parent, ignore_errors=True)
    for stale in cache.glob(".fetch-*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)


def ensure_kernel(
    cache_dir: Path | str | None = None,
    *,
    offline: bool = False,
    log: Callable[[str], None] | None = None,
) -> KernelFiles:
    """The current Debian kernel, from the cache or downloaded into it.

    ``offline=True`` (or no usable apt) takes the newest cached kernel instead. ``log`` hears
    about a download (the first run takes ~15 s: the .deb, dpkg -x, the vmlinux).
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = open(cache / ".lock", "a+")  # noqa: SIM115 (closed by the with below)
    except OSError as err:
        raise VMError(f"kernel cache {cache}: {err} (PYCONT_VM_CACHE sets another)") from err
    with lock:  # one fetch at a time; closing the file releases the lock
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_locked(cache, offline, log or (lambda _msg: None))


def _ensure_locked(cache: Path, offline: bool, log: Callable[[str], None]) -> KernelFiles:
    try:
        if offline:
            raise VMError("offline")
        package, version = current_package()
    except VMError as err:
        cached = cached_kernels(cache)
        if cached:
            log(f"using the cached {cached[0].package} {cached[0].package_version}: {err}")
            return cached[0]
        raise VMError(f"no kernel in {cache} and none can be fetched: {err}") from err
    found = _load(cache / _entry_name(package, version))
    if found is not None:
        return found
    try:
        log(f"fetching {package} {version} into {cache} (apt-get download, dpkg -x)")
        found = _fetch(cache, package, version)
    except VMError:
        cached = cached_kernels(cache)
        if cached:  # the mirror is unreachable: the previous kernel still does the job
            log(f"download failed, using the cached {cached[0].package}")
            return cached[0]
        raise
    _prune(cache, found)
    return found
