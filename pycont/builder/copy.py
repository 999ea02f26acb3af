"""COPY and ADD: files from the build context (or another stage's layers) written as a layer tar.

The layer is a plain OCI layer: the copied files under their destination, plus the directories
above them (new ones as COPY makes them, existing ones unchanged). Where the destination goes
through a symlink of the image, the symlink is resolved inside the image's root, as if chrooted
(an absolute target starts at the image's root, ``..`` stops there), so nothing ever points
the write at a host path; :func:`pycont.images.layers.apply_layer` then unpacks the tar without
following any symlink either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from pycont.builder.context import Context, expand, go_clean, has_magic, walk_tree
from pycont.errors import UsageError
from pycont.images import whiteouts as wh
from pycont.images._tarwrite import Entry, TarStats, Writable, write_tar
from pycont.overlay import lookup

__all__ = [
    "CopySource",
    "check_add_sources",
    "copy_layer",
    "from_context",
    "from_layers",
    "parse_chmod",
    "parse_chown",
    "resolve_in_image",
]

_MAX_LINKS = 40  # as the kernel's MAXSYMLINKS: more hops than this is a loop (ELOOP)
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


# -- paths inside an image: resolved through its lower layers, never on the host ----------------
def _lstat_in(lowers: Sequence[str], rel: str) -> os.stat_result | None:
    found = lookup(lowers, "" if rel == "." else rel)
    return os.lstat(found[0]) if found else None


def resolve_in_image(lowers: Sequence[str], path: str, *, follow_last: bool = True) -> str:
    """``path`` with its symlinks resolved in the image made of ``lowers`` (top first).

    As in a chroot: an absolute link target starts at the image's root and ``..`` stops
    there. Returns a clean relative path ("." for the root); what does not exist yet stays
    as written."""
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        rel = "/".join([*done, part])
        found = lookup(lowers, rel)
        if found and (todo or follow_last) and stat.S_ISLNK(os.lstat(found[0]).st_mode):
            hops += 1
            if hops > _MAX_LINKS:
                raise UsageError(f"resolve /{path.strip('/')} in the image: too many symlinks")
            target = os.readlink(found[0])
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        done.append(part)
    return "/".join(done) or "."


class _LayerTree:
    """The merged view of unpacked layers (top first), as overlay would show it."""

    def __init__(self, layers: Sequence[str]) -> None:
        self.layers = list(layers)

    def lstat(self, rel: str) -> os.stat_result | None:
        return _lstat_in(self.layers, rel)

    def listdir(self, rel: str) -> list[str]:
        found = lookup(self.layers, "" if rel == "." else rel)
        names = {n for d in found if os.path.isdir(d) for n in os.listdir(d)}
        prefix = "" if rel == "." else rel + "/"
        return sorted(n for n in names if lookup(self.layers, prefix + n))

    def enter(self, rel: str) -> str | None:
        real = resolve_in_image(self.layers, rel)
        st = self.lstat(real)
        return real if st is not None and stat.S_ISDIR(st.st_mode) else None

    def open_file(self, rel: str) -> int:
        return os.open(lookup(self.layers, rel)[0], _FILE)

    def readlink(self, rel: str) -> str:
        return os.readlink(lookup(self.layers, rel)[0])


@dataclass(frozen=True)
class CopySource:
    """Where COPY reads: the build context, or the layers of a stage or image (``--from``)."""

    context: Context | None = None
    layers: tuple[str, ...] = ()

    def _src(self) -> Context | _LayerTree:
        return self.context if self.context is not None else _LayerTree(self.layers)

    def expand(self, patterns: Sequence[str]) -> list[str]:
        """The source arguments as clean relative paths (sorted, unique); UsageError if one
        names nothing. A --from image is a root: ``..`` stops at it."""
        if self.context is not None:
            return self.context.sources(patterns)
        tree, found = _LayerTree(self.layers), set()
        for raw in patterns:
            matches = expand(tree, go_clean("/" + raw).lstrip("/") or ".")
            if not matches:
                raise UsageError(f"COPY failed: file not found in the --from image: {raw}")
            found.update(matches)
        return sorted(found)

    def walk(self, rel: str) -> Iterator[tuple[str, os.stat_result]]:
        src = self._src()
        return walk_tree(src.tree() if isinstance(src, Context) else src, rel)

    def open_file(self, rel: str) -> int:
        return self._src().open_file(rel)

    def readlink(self, rel: str) -> str:
        return self._src().readlink(rel)


def from_context(ctx: Context) -> CopySource:
    return CopySource(context=ctx)


def from_layers(layers: Sequence[str]) -> CopySource:
    """COPY --from: read through overlay's rules (whiteouts, opaque directories), top first."""
    return CopySource(layers=tuple(layers))


# -- --chown and --chmod ------------------------------------------------------------------------
def _image_file(lowers: Sequence[str], path: str) -> str:
    st_rel = resolve_in_image(lowers, path)
    found = lookup(lowers, st_rel)
    if not found or not stat.S_ISREG(os.lstat(found[0]).st_mode):
        return ""
    with open(found[0], encoding="utf-8", errors="replace") as f:
        return f.read()


def _find_ids(text: str, name: str, count: int) -> list[int] | None:
    """The numeric fields after the password of ``name``'s line in passwd(5) or group(5)."""
    for line in text.splitlines():
        fields = line.split(":")
        if fields[0] == name and len(fields) >= 2 + count:
            with contextlib.suppress(ValueError):
                return [int(f) for f in fields[2 : 2 + count]]
    return None


def parse_chown(spec: str, lowers: Sequence[str]) -> tuple[int, int]:
    """``--chown=USER[:GROUP]`` as numeric ids: names are looked up in the image's own
    /etc/passwd and /etc/group; a user alone gets its primary group (a bare uid, the same
    number as gid), as BuildKit does."""
    user, _, group = spec.partition(":")
    if not user or (":" in spec and not group):
        raise UsageError(f"invalid --chown={spec}: accepted are USER, UID, USER:GROUP, UID:GID")
    if user.isdigit():
        uid = gid = int(user)
    else:
        ids = _find_ids(_image_file(lowers, "/etc/passwd"), user, 2)
        if ids is None:
            raise UsageError(f"unable to find user {user}: no matching entries in passwd file")
        uid, gid = ids
    if group.isdigit():
        gid = int(group)
    elif group:
        ids = _find_ids(_image_file(lowers, "/etc/group"), group, 1)
        if ids is None:
            raise UsageError(f"unable to find group {group}: no matching entries in group file")
        gid = ids[0]
    return uid, gid


def parse_chmod(spec: str) -> int:
    """``--chmod=755``: an octal mode, as docker accepts it."""
    if not re.fullmatch(r"[0-7]{1,4}", spec):
        raise UsageError(f"invalid --chmod={spec}: accepted is an octal mode such as 755 or 0644")
    return int(spec, 8)


def check_add_sources(sources: Sequence[str]) -> None:
    """ADD of a URL needs the network, which builds here do not have: say so up front."""
    for s in sources:
        if s.lower().startswith(("http://", "https://")):
            raise UsageError(
                "ADD failed: URL sources need the network, which builds here do not have: "
                "download it into the context and COPY it"
            )


# -- the layer ----------------------------------------------------------------------------------
Opener = Callable[[], int]  # gives an fd to read a file's content from, when it is written


class _Layer:
    """The entries of one COPY, by name (a later one replaces an earlier one, as in a tar)."""

    def __init__(self, lowers: Sequence[str], owner: tuple[int, int] | None) -> None:
        self.lowers = list(lowers)
        self.owner = owner
        self.entries: dict[str, Entry] = {}
        self.openers: dict[str, Opener] = {}
        self.made: set[str] = set()  # directories COPY creates: their mtime is set at the end

    def add(self, entry: Entry, opener: Opener | None = None) -> None:
        parts = entry.name.split("/")
        for i in range(1, len(parts)):
            above = self.entries.get("/".join(parts[:i]))
            if above is not None and above.type != tarfile.DIRTYPE:
                # apply_layer would refuse to write through it: say so now, naming both
                raise UsageError(
                    f"COPY failed: /{entry.name} would go through /{above.name}, "
                    "which this step writes as a file or symlink"
                )
        old = self.entries.get(entry.name)
        if old is not None and old.type == tarfile.DIRTYPE and entry.type != tarfile.DIRTYPE:
            # a file replacing a directory replaces what was copied into it too
            inside = [n for n in self.entries if n.startswith(entry.name + "/")]
            for n in inside:
                del self.entries[n]
                self.openers.pop(n, None)
        self.entries[entry.name] = entry
        self.openers.pop(entry.name, None)
        if opener is not None:
            self.openers[entry.name] = opener

    def ensure_dir(self, rel: str) -> bool:
        """Entries for ``rel`` and its parents; True if ``rel`` already exists in the image."""
        existed = False
        parts = [] if rel == "." else rel.split("/")
        for i in range(len(parts)):
            name = "/".join(parts[: i + 1])
            st = _lstat_in(self.lowers, name)
            existed = st is not None
            if name in self.entries:
                continue
            if st is None:
                uid, gid = self.owner or (0, 0)
                self.add(Entry(name, tarfile.DIRTYPE, 0o755, uid, gid))
                self.made.add(name)
            elif stat.S_ISDIR(st.st_mode):  # repeat the image's own, so the layer keeps it
                mode, mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
                self.add(Entry(name, tarfile.DIRTYPE, mode, st.st_uid, st.st_gid, mtime))
            else:
                raise UsageError(f"COPY failed: /{name} is not a directory in the image")
        return existed

    def stream(self) -> Iterator[Entry]:
        newest = max((e.mtime for e in self.entries.values()), default=0)
        for name, entry in self.entries.items():
            if name in self.made:
                entry = dataclasses.replace(entry, mtime=newest)
            opener = self.openers.get(name)
            if opener is None:
                yield entry
                continue
            fd = opener()
            try:
                size = os.fstat(fd).st_size
                # write_tar reads a path: this one is the open file itself, whatever its name.
                yield dataclasses.replace(entry, source=f"/proc/self/fd/{fd}", size=size)
            finally:
                os.close(fd)


def _dest_rel(target: str, lowers: Sequence[str], want_dir: bool) -> tuple[str, bool]:
    """Where in the image ``target`` (absolute, clean) is, and whether it is a directory."""
    if target == "/":
        return ".", True
    parent = resolve_in_image(lowers, posixpath.dirname(target))
    rel = posixpath.join(parent, posixpath.basename(target)).removeprefix("./")
    st = _lstat_in(lowers, rel)
    if st is not None and stat.S_ISLNK(st.st_mode):
        real = resolve_in_image(lowers, rel)
        real_st = _lstat_in(lowers, real)
        if want_dir or (real_st is not None and stat.S_ISDIR(real_st.st_mode)):
            return real, True  # else a file replaces the link itself
        return rel, False
    return rel, want_dir or (st is not None and stat.S_ISDIR(st.st_mode))


def _join(base: str, sub: str) -> str:
    return sub if base == "." else (base if sub == "." else f"{base}/{sub}")


def copy_layer(
    out: Writable,
    sources: Sequence[str],
    dest: str,
    *,
    src: CopySource,
    lowers: Sequence[str],
    workdir: str = "/",
    chown: tuple[int, int] | None = None,
    chmod: int | None = None,
    extract_archives: bool = False,
    heredocs: Mapping[str, str] | None = None,
) -> TarStats:
    """Write the layer of ``COPY sources... dest`` (``ADD`` with ``extract_archives``) to
    ``out``; ``lowers`` are the image's unpacked layers so far, top first."""
    docs = dict(heredocs or {})  # every heredoc is written, named in ``sources`` or not
    files = [s for s in sources if not s.startswith("<<")]  # "<<EOF" names a heredoc
    if extract_archives:
        check_add_sources(files)
    rels = src.expand(files) if files else []
    target = go_clean(posixpath.join(workdir, dest))
    want_dir = (
        dest.endswith(("/", "/.")) or dest in (".", "")
        or len(files) + len(docs) > 1 or any(has_magic(s) for s in files)
    )  # fmt: skip
    layer = _Layer(lowers, chown)
    uid, gid = chown or (0, 0)
    with contextlib.ExitStack() as stack:
        for rel in rels:
            st = next(src.walk(rel))[1]
            is_dir = stat.S_ISDIR(st.st_mode)
            archive = _open_archive(src, rel, stack) if extract_archives and not is_dir else None
            base, as_dir = _dest_rel(target, lowers, want_dir or is_dir or archive is not None)
            if archive is not None:
                layer.ensure_dir(base)
                _add_archive(layer, archive, base, rel, chown)
            elif not as_dir:
                layer.ensure_dir(posixpath.dirname(base) or ".")
                _add_one(layer, src, rel, st, base, uid, gid, chmod)
            elif not is_dir:
                layer.ensure_dir(base)
                _add_one(layer, src, rel, st, _join(base, posixpath.basename(rel)), uid, gid, chmod)
            else:
                _add_tree(layer, src, rel, base, uid, gid, chmod)
        for name, content in docs.items():
            base, as_dir = _dest_rel(target, lowers, want_dir)
            layer.ensure_dir(base if as_dir else posixpath.dirname(base) or ".")
            path = _join(base, name) if as_dir else base
            mode = 0o644 if chmod is None else chmod
            layer.add(Entry(path, tarfile.REGTYPE, mode, uid, gid, data=content.encode()))
        return write_tar(layer.stream(), out)


def _add_tree(
    layer: _Layer, src: CopySource, rel: str, base: str, uid: int, gid: int, chmod: int | None
) -> None:
    """A directory's content into ``base``, which gets the directory's own mode if COPY
    creates it; one the image already has keeps its mode and owner."""
    existed = layer.ensure_dir(base)
    prefix = "" if rel == "." else rel + "/"
    for path, st in src.walk(rel):
        if path == rel:
            if existed or base == ".":
                continue
            layer.made.discard(base)  # its mtime is the source directory's
            _add_one(layer, src, path, st, base, uid, gid, chmod)
            continue
        _add_one(layer, src, path, st, _join(base, path.removeprefix(prefix)), uid, gid, chmod)


def _add_one(
    layer: _Layer,
    src: CopySource,
    rel: str,
    st: os.stat_result,
    name: str,
    uid: int,
    gid: int,
    chmod: int | None,
) -> None:
    mode = stat.S_IMODE(st.st_mode) if chmod is None else chmod
    mtime = int(st.st_mtime)
    if stat.S_ISDIR(st.st_mode):
        layer.add(Entry(name, tarfile.DIRTYPE, mode, uid, gid, mtime))
    elif stat.S_ISREG(st.st_mode):
        layer.add(
            Entry(name, tarfile.REGTYPE, mode, uid, gid, mtime),
            lambda: src.open_file(rel),
        )
    elif stat.S_ISLNK(st.st_mode):
        target = src.readlink(rel)
        layer.add(Entry(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime, linkname=target))
    elif stat.S_ISFIFO(st.st_mode):
        layer.add(Entry(name, tarfile.FIFOTYPE, mode, uid, gid, mtime))
    elif not stat.S_ISSOCK(st.st_mode):  # a socket belongs to a process: skipped, as tar does
        raise UsageError(f"COPY failed: {rel} is a device node, which layers may not hold")


# -- ADD's archives -----------------------------------------------------------------------------
def _open_archive(src: CopySource, rel: str, stack: contextlib.ExitStack) -> tarfile.TarFile | None:
    """The local tar (plain, gzip, bzip2 or xz) at ``rel``, or None if it is not one."""
    f = stack.enter_context(os.fdopen(src.open_file(rel), "rb"))
    try:
        return stack.enter_context(tarfile.open(fileobj=f, mode="r:*"))
    except (tarfile.TarError, EOFError, OSError):
        return None  # as docker: anything else is copied as it is


def _add_archive(
    layer: _Layer, tar: tarfile.TarFile, base: str, rel: str, chown: tuple[int, int] | None
) -> None:
    """The archive's members below ``base``, checked as a layer's are: nothing may leave it."""
    names: dict[str, str] = {}  # member name -> entry name, for hard links
    for m in tar:

        def refuse(why: str, m: tarfile.TarInfo = m) -> UsageError:
            return UsageError(f"ADD failed: {rel}: refusing entry {m.name!r}: {why}")

        if m.name.startswith("/"):
            raise refuse("absolute path")
        parts = [p for p in m.name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise refuse("it leaves the destination")
        if not parts:
            continue  # "./": the destination itself keeps its metadata
        if parts[-1].startswith(wh.WHITEOUT_PREFIX):
            raise refuse("a whiteout name would delete files of the image")
        name = _join(base, "/".join(parts))
        uid, gid = chown or (m.uid, m.gid)
        mode, mtime = m.mode & 0o7777, int(m.mtime)
        if m.isdir():
            layer.add(Entry(name, tarfile.DIRTYPE, mode, uid, gid, mtime))
        elif m.isreg():
            layer.add(Entry(name, tarfile.REGTYPE, mode, uid, gid, mtime), _spool(tar, m))
        elif m.issym():
            layer.add(Entry(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime, linkname=m.linkname))
        elif m.islnk():
            linked = names.get("/".join(p for p in m.linkname.split("/") if p not in ("", ".")))
            if linked is None:
                raise refuse(f"hard link to {m.linkname!r}, which is not earlier in the archive")
            layer.add(Entry(name, tarfile.LNKTYPE, mode, uid, gid, mtime, linkname=linked))
        elif m.isfifo():
            layer.add(Entry(name, tarfile.FIFOTYPE, mode, uid, gid, mtime))
        else:
            raise refuse("device nodes cannot go into a layer")
        names["/".join(parts)] = name


def _spool(tar: tarfile.TarFile, m: tarfile.TarInfo) -> Opener:
    """An opener that unpacks one member into an unlinked temporary file when it is needed."""

    def opener() -> int:
        data = tar.extractfile(m)
        with tempfile.TemporaryFile(prefix="pycont-add-") as tmp:
            if data is not None:
                shutil.copyfileobj(data, tmp, 1 << 20)
            tmp.flush()
            fd = os.dup(tmp.fileno())
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    return opener
