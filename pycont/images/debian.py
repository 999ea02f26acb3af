"""Images from the host's installed Debian packages: ``pycont image import-debian nodejs``.

A package's files (what dpkg lists for it) plus the shared libraries its ELF programs need
(their DT_NEEDED entries, followed transitively, and the loader) make a root that runs the
program: one layer on top of the built-in busybox image, so the image also has a shell. No
download: only what is installed on this machine is copied. Debian 12 merged /bin, /lib and
/lib64 into /usr (symlinks); the layer keeps that layout where busybox has no directory.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import stat
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pycont.errors import UsageError
from pycont.images import oci
from pycont.images._tarwrite import Entry, keep_xattr, write_tar
from pycont.images.busybox import GROUP, PASSWD
from pycont.images.elf import TRUSTED_DIRS, LibraryResolver, elf_needed, is_elf
from pycont.images.report import ImageRecord
from pycont.images.store import Store

__all__ = [
    "IMAGES",
    "SKIPPED",
    "DebianImport",
    "Package",
    "PackageNotInstalled",
    "elf_needed",
    "import_debian",
    "installed_package",
]

DPKG = "/var/lib/dpkg"
# Not needed to run anything, and most of a package's size: left out of the layer.
SKIPPED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale")
LABEL = "org.pycont.import-debian"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nservices: files\n"


@dataclass(frozen=True)
class ImageDefaults:
    """How docker's official image for a package looks: its name, version variable, command
    and user (``node``, 1000:1000, in docker's node image)."""

    name: str
    version_env: str = ""
    cmd: tuple[str, ...] = ("sh",)
    user: tuple[str, int] | None = None


IMAGES = {
    "nodejs": ImageDefaults("node", "NODE_VERSION", ("node",), ("node", 1000)),
    "python3": ImageDefaults("python", "PYTHON_VERSION", ("python3",)),
}


class PackageNotInstalled(UsageError):
    """The package is not installed on this host (nothing is ever downloaded)."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str  # "20.20.2-1nodesource1+repack1"
    arch: str
    info: str  # /var/lib/dpkg/info/nodejs.list (or nodejs:amd64.list): the files it owns

    @property
    def upstream(self) -> str:
        """The version without epoch and Debian revision: ``20.20.2``."""
        return self.version.split(":", 1)[-1].rsplit("-", 1)[0]

    @property
    def major(self) -> str:
        m = re.match(r"\d+", self.upstream)
        return m.group(0) if m else "latest"

    def paths(self) -> list[str]:
        with open(self.info, encoding="utf-8", errors="surrogateescape") as f:
            return [p for p in f.read().splitlines() if p.startswith("/") and p != "/."]

    @property
    def mtime(self) -> int:
        # md5sums keeps the mtime it had in the .deb (the package's build time), so it is the
        # same on every host; the .list is rewritten by dpkg itself.
        for ext in (".md5sums", ".list"):
            try:
                return int(os.stat(self.info[: -len(".list")] + ext).st_mtime)
            except OSError:
                continue
        return 0


def installed_package(name: str, admindir: str = DPKG) -> Package:
    """The installed package ``name`` (from dpkg's status file); PackageNotInstalled if not."""
    found = None
    try:
        with open(os.path.join(admindir, "status"), encoding="utf-8", errors="replace") as f:
            stanzas = f.read().split("\n\n")
    except OSError:
        stanzas = []
    for stanza in stanzas:
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Package") == name and fields.get("Status", "").endswith(" installed"):
            found = fields
            break
    if found is not None:
        arch = found.get("Architecture", "")
        for base in (f"{name}:{arch}", name):
            info = os.path.join(admindir, "info", base + ".list")
            if os.path.isfile(info):
                return Package(name, found.get("Version", ""), arch, info)
    raise PackageNotInstalled(
        f"package '{name}' is not installed on this host: install it with apt-get install "
        f"{name} (pycont import-debian copies installed packages; it downloads nothing)"
    )


def _skipped(name: str) -> bool:
    return any(name == s or name.startswith(s + "/") for s in SKIPPED)


class _Layer:
    """The layer's entries, named as inside the image, built from host paths."""

    def __init__(self, mtime: int, keep_dirs: set[str]) -> None:
        self.mtime = mtime
        self.keep_dirs = keep_dirs  # the base image's directories: never replaced by a symlink
        self.entries: dict[str, Entry] = {}
        self.stamp: list[str] = []  # what the host showed: changes the cache key when it changes

    def add(self, entry: Entry, st: os.stat_result | None = None) -> None:
        if entry.name in self.entries or _skipped(entry.name):
            return
        self.entries[entry.name] = entry
        if st is not None:  # a directory's own mtime changes with what else it holds: not used
            when = "" if entry.type == tarfile.DIRTYPE else f" {st.st_size} {st.st_mtime_ns}"
            self.stamp.append(f"{entry.name} {st.st_mode:o} {entry.linkname}{when}")
        parent = os.path.dirname(entry.name)
        if parent and parent not in self.entries:
            self.add_host(parent, "/" + parent)

    def add_host(self, name: str, host: str) -> None:
        """``host`` (one file, symlink or dir; not followed) at ``name``."""
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return
        kind, mode, link = tarfile.REGTYPE, stat.S_IMODE(st.st_mode), ""
        xattrs: tuple[tuple[str, bytes], ...] = ()
        if stat.S_ISDIR(st.st_mode):
            kind = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            kind, mode, link = tarfile.SYMTYPE, 0o777, os.readlink(host)
        elif stat.S_ISREG(st.st_mode):
            xattrs = tuple(
                (k, os.getxattr(host, k, follow_symlinks=False))
                for k in sorted(os.listxattr(host, follow_symlinks=False))
                if keep_xattr(k)
            )
        else:
            return  # sockets, fifos, devices: not part of a package's files
        regular = kind == tarfile.REGTYPE
        entry = Entry(
            name,
            kind,
            mode,
            st.st_uid,
            st.st_gid,
            self.mtime,
            linkname=link,
            source=host if regular else None,
            size=st.st_size if regular else 0,
            xattrs=xattrs,
        )
        self.add(entry, st)

    def canonical(self, path: str, follow_last: bool = False) -> str:
        """Where ``path`` is in the image: resolved through the host's symlinks, each one on
        the way added (``lib -> usr/lib``), except over a directory of the base image
        (busybox's /bin stays a directory: ``/bin/x`` goes to ``usr/bin/x``)."""
        todo = [p for p in path.split("/") if p]
        done: list[str] = []
        hops = 0
        while todo:
            part = todo.pop(0)
            if part in (".", ".."):
                done = done[:-1] if part == ".." else done
                continue
            name = "/".join([*done, part])
            if (todo or follow_last) and os.path.islink("/" + name) and hops < 40:
                hops += 1
                if name not in self.keep_dirs:
                    self.add_host(name, "/" + name)
                target = os.readlink("/" + name)
                done = [] if target.startswith("/") else done
                todo = [p for p in target.split("/") if p] + todo
                continue
            done.append(part)
        return "/".join(done)

    def add_tree(self, host: str) -> list[str]:
        """Everything under directory ``host``, as it is on disk; returns the host paths."""
        base = self.canonical(host, follow_last=True)
        seen = [host]
        self.add_host(base, host)
        for dirpath, dirs, files in os.walk(host):
            rel = os.path.relpath(dirpath, host)
            here = base if rel == "." else f"{base}/{rel}"
            for n in sorted(dirs + files):
                seen.append(os.path.join(dirpath, n))
                self.add_host(f"{here}/{n}", seen[-1])
        return seen

    def text(self, name: str, content: str, mode: int = 0o644) -> None:
        self.add(Entry(name, tarfile.REGTYPE, mode, mtime=self.mtime, data=content.encode()))

    def sorted(self) -> list[Entry]:
        # By path components: a directory comes before what it holds.
        return sorted(self.entries.values(), key=lambda e: e.name.split("/"))


def _owners(pkgs: Sequence[Package], paths: set[str]) -> tuple[set[str], dict[str, str]]:
    """Of ``paths``: those some other installed package lists too, and each one's owner."""
    ours = {os.path.basename(p.info) for p in pkgs}
    shared: set[str] = set()
    owner: dict[str, str] = {}
    info = os.path.join(DPKG, "info")
    for fn in sorted(os.listdir(info)):
        if not fn.endswith(".list") or fn in ours:
            continue
        with open(os.path.join(info, fn), encoding="utf-8", errors="surrogateescape") as f:
            hits = paths.intersection(f.read().splitlines())
        shared |= hits
        for h in hits:
            owner.setdefault(h, fn[: -len(".list")].split(":")[0])
    return shared, owner


def _aliases(path: str) -> set[str]:
    """The names dpkg may list a file under, with usrmerge: /lib/x and /usr/lib/x."""
    out = {path, os.path.realpath(path)}
    for p in list(out):
        out.add(p.removeprefix("/usr") if p.startswith("/usr/") else "/usr" + p)
    return out


@dataclass(frozen=True)
class DebianImport:
    """What ``import_debian`` did: the image, and what went into it."""

    record: ImageRecord
    packages: tuple[Package, ...]
    libraries: tuple[str, ...]  # host paths of the libraries added (loader included)
    up_to_date: bool  # the image was already there, from the same files: nothing written
    notes: tuple[str, ...] = ()  # files changed on the host since dpkg installed them
    seconds: float = 0.0

    @property
    def what(self) -> str:
        """``nodejs 20.20.2-1nodesource1+repack1``: the packages and their versions."""
        return ", ".join(f"{p.name} {p.version}" for p in self.packages)


def _plan(pkgs: Sequence[Package], base_dirs: set[str]) -> tuple[_Layer, list[str], list[str]]:
    """The package layer's entries, the libraries added to it, and notes for the user."""
    layer = _Layer(max(p.mtime for p in pkgs), base_dirs)
    listed = [q for p in pkgs for q in p.paths()]
    names = set(listed)
    dirs = {q for q in listed if os.path.isdir(q) and not os.path.islink(q)}
    mine = dirs - _owners(pkgs, dirs)[0]
    # A directory no other package lists is the package's own: it is copied as it is on disk
    # (npm install -g rewrites /usr/lib/node_modules/npm after dpkg), so the image runs what
    # this host runs. Only the topmost such directories are walked.
    unlisted = 0
    for d in sorted(d for d in mine if os.path.dirname(d) not in mine):
        unlisted += sum(h not in names for h in layer.add_tree(d))
    for q in listed:
        if not os.path.isdir(q) or os.path.islink(q):
            layer.add_host(layer.canonical(q), q)
    notes = []
    gone = sum(not os.path.lexists(q) for q in listed)
    if gone or unlisted:
        notes.append(
            f"{' '.join(p.name for p in pkgs)}: {gone} files dpkg lists are gone and {unlisted} "
            "it does not list are in its directories (made after install: caches, npm "
            "install -g); the image has what is on disk"
        )
    # Libraries: what the package's ELF files need, transitively, and the loader they name.
    resolver = LibraryResolver()
    sources = {e.source for e in layer.entries.values() if e.source}
    elves = sorted(s for s in sources if is_elf(s))
    found, missing = resolver.closure(elves)
    interps = {resolver.info(e).interpreter for e in elves} - {""}
    own = {os.path.realpath(s) for s in sources}
    libs = sorted({lib for lib in (*found.values(), *interps) if os.path.realpath(lib) not in own})
    for lib in libs:
        # Through each symlink on the way, added too: lib64 -> usr/lib64, libc.so.6 -> ...
        layer.add_host(layer.canonical(lib, follow_last=True), os.path.realpath(lib))
    if missing:
        notes.append(f"libraries not found on this host: {', '.join(sorted(missing))}")
    return layer, list(dict.fromkeys(os.path.realpath(lib) for lib in libs)), notes


def import_debian(
    packages: Sequence[str], ref: str | None = None, store: Store | None = None
) -> DebianImport:
    """Make image ``ref`` (default ``<name>:<major version>``: ``node:20``) from installed
    Debian packages on top of busybox. Same host files, same layer digest; when the image
    already holds them, nothing is written (``up_to_date``)."""
    from pycont.images import resolve

    if not packages:
        raise UsageError("import-debian: name at least one installed Debian package")
    start = time.monotonic()
    pkgs = tuple(installed_package(p) for p in packages)
    defaults = IMAGES.get(pkgs[0].name, ImageDefaults(pkgs[0].name))
    ref = ref or f"{defaults.name}:{pkgs[0].major}"
    store = store or Store()
    resolve("busybox:latest", store)  # built offline on first use
    base = store.get("busybox:latest")
    layer, libs, notes = _plan(pkgs, _base_dirs(base))
    users = [defaults.user] if defaults.user else []
    passwd = PASSWD + "".join(f"{u}:x:{i}:{i}::/home/{u}:/bin/sh\n" for u, i in users)
    group = GROUP + "".join(f"{u}:x:{i}:\n" for u, i in users)
    layer.text("etc/passwd", passwd)
    layer.text("etc/group", group)
    layer.text("etc/nsswitch.conf", NSSWITCH)
    layer.add(Entry("tmp", tarfile.DIRTYPE, 0o1777, mtime=layer.mtime))
    for u, i in users:
        layer.add(Entry(f"home/{u}", tarfile.DIRTYPE, 0o755, i, i, mtime=layer.mtime))
    extra_dirs = sorted({os.path.dirname(lib) for lib in libs} - set(TRUSTED_DIRS))
    key = hashlib.sha256("\n".join([*sorted(layer.stamp), *base.diff_ids]).encode()).hexdigest()
    labels = {
        LABEL: " ".join(f"{p.name}={p.version}" for p in pkgs),
        LABEL + ".key": key,
    }
    old = _existing(store, ref)
    if old is not None and old.labels.get(LABEL + ".key") == key:
        return DebianImport(old, pkgs, tuple(libs), True, tuple(notes), time.monotonic() - start)
    config = copy.deepcopy(base.config)
    cfg = config.setdefault("config", {})
    env = [f"PATH={oci.DEFAULT_PATH}"]
    if defaults.version_env:
        env.append(f"{defaults.version_env}={pkgs[0].upstream}")
    if extra_dirs:  # the image has no ld.so.cache: ld.so finds these only this way
        env.append("LD_LIBRARY_PATH=" + ":".join(extra_dirs))
    cfg.update(Env=env, Cmd=list(defaults.cmd), Labels=labels)
    what = " ".join(f"{p.name} ({p.version})" for p in pkgs)
    with store.stage() as stage:
        with stage.blobs.writer() as w:
            write_tar(layer.sorted(), w)
        oci.add_layer(
            config,
            w.digest,
            created=layer.mtime,
            created_by=f"pycont image import-debian {what} + {len(libs)} libraries",
        )
        layers = [*base.manifest["layers"], oci.descriptor(oci.LAYER, w.digest, w.size)]
        rec = store.add_image(ref, config, layers, staging=stage)
    return DebianImport(rec, pkgs, tuple(libs), False, tuple(notes), time.monotonic() - start)


def _base_dirs(base: ImageRecord) -> set[str]:
    """The base image's directories (busybox's bin, sbin): never replaced by a symlink."""
    out: set[str] = set()
    for top in base.layers:
        for dirpath, dirs, _files in os.walk(top):
            rel = os.path.relpath(dirpath, top)
            out.update(n if rel == "." else f"{rel}/{n}" for n in dirs)
    return out


def _existing(store: Store, ref: str) -> ImageRecord | None:
    from pycont.errors import ImageNotFound

    try:
        return store.lookup(ref)
    except ImageNotFound:
        return None
