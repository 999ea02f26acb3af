"""The build context: the folder ``docker build`` sends, minus what ``.dockerignore`` excludes.

``COPY`` can only read from the context, never from the rest of the host: every path here is
opened component by component with ``O_NOFOLLOW`` (open(2)) from the context's root, so neither
a symlink nor a ``..`` leads a read out of it. A symlink in the context is content like any
other file: it is copied as a link, never followed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from pycont.errors import UsageError

__all__ = ["Context", "IgnoreRules", "Tree", "expand", "go_clean", "walk_tree"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO


def go_clean(path: str) -> str:
    """Go's ``filepath.Clean``: the lexically shortest equivalent path ("" is ".").

    Unlike posixpath.normpath it also folds a leading "//", as docker's own code does."""
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    joined = "/".join(out)
    return ("/" + joined) if rooted else (joined or ".")


# -- .dockerignore ------------------------------------------------------------------------------
# moby/patternmatcher turns each pattern into a regexp ("*" and "?" stay within one path
# element, "**" spans any number) but takes shortcuts for some shapes; we keep the shortcuts,
# which differ in corner cases ("**foo" also matches "barfoo"), to match docker exactly.
_GO_ESCAPE = set(".+()|{}$")  # regexp specials that mean nothing in a filepath pattern


def _ignore_matcher(pattern: str) -> Callable[[str], bool]:
    regex, kind, i, n = "^", "exact", 0, 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*" and pattern[i : i + 1] == "*":
            i += 1 + (pattern[i + 1 : i + 2] == "/")  # "**/" is read as "**"
            if i >= len(pattern):
                if kind == "exact":
                    kind = "prefix"
                else:
                    regex, kind = regex + ".*", "regexp"
            else:
                regex, kind = regex + "(.*/)?", "regexp"
            if n == 0:
                kind = "suffix"
        elif ch == "*":
            regex, kind = regex + "[^/]*", "regexp"
        elif ch == "?":
            regex, kind = regex + "[^/]", "regexp"
        elif ch == "\\" and i < len(pattern):
            regex, kind, i = regex + re.escape(pattern[i]), "regexp", i + 1
        elif ch == "\\":
            regex += "\\\\"
        elif ch in "[]":
            regex, kind = regex + ch, "regexp"
        else:
            regex += "\\" + ch if ch in _GO_ESCAPE else ch
        n += 1
    if kind == "exact":
        return lambda path: path == pattern
    if kind == "prefix":
        return lambda path: path.startswith(pattern[:-2])
    if kind == "suffix":
        suffix = pattern[2:]
        return lambda path: path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
    try:
        compiled = re.compile(regex + "$")
    except re.error as err:
        raise UsageError(f".dockerignore: bad pattern {pattern!r}: {err}") from err
    return lambda path: compiled.match(path) is not None


class IgnoreRules:
    """The lines of a ``.dockerignore`` file, matched as docker's builder does.

    Each line is a pattern; ``!`` makes an exception; the last line that matches a path (or
    one of its parent directories) decides."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.rules: list[
            tuple[bool, str, Callable[[str], bool]]
        ] = []  # (exception, pattern, match)
        for number, raw in enumerate(lines, 1):
            line = raw.removeprefix("\ufeff") if number == 1 else raw
            if line.startswith("#") or not line.strip():
                continue
            line = line.strip()
            exception = line.startswith("!")
            pattern = line[1:].strip() if exception else line
            if not pattern:
                raise UsageError(f'.dockerignore line {number}: illegal exclusion pattern "!"')
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
            glob_regex(pattern, f".dockerignore line {number}")  # syntax check, as docker
            self.rules.append((exception, pattern, _ignore_matcher(pattern)))
        self.has_exceptions = any(e for e, _, _ in self.rules)

    def matches(self, rel: str) -> bool:
        """Is ``rel`` (a clean path relative to the context) excluded?"""
        rel = go_clean(rel)
        if rel == ".":
            return False  # docker never lets the context itself be excluded
        parts = rel.split("/")
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        matched = False
        for exception, _, match in self.rules:
            if exception != matched:
                continue  # an exception can only undo a match, a pattern only add one
            if match(rel) or any(match(p) for p in parents):
                matched = not exception
        return matched


# -- COPY's globs (Go's filepath.Match) -----------------------------------------------------------
def has_magic(part: str) -> bool:
    return any(c in part for c in "*?[\\")


def glob_regex(pattern: str, what: str) -> re.Pattern[str]:
    """Go's ``filepath.Match`` syntax as a regexp: ``*`` ``?`` ``[a-z]`` ``[^a]`` ``\\x``."""

    def bad(why: str) -> UsageError:
        return UsageError(f"{what}: bad pattern {pattern!r}: {why}")

    out, i, n = "", 0, len(pattern)

    def char(j: int) -> tuple[str, int]:  # one (maybe escaped) character inside a [class]
        if j >= n or pattern[j] in "-]":
            raise bad("unfinished or empty character class")
        if pattern[j] == "\\":
            j += 1
            if j >= n:
                raise bad("it ends with a backslash")
        return pattern[j], j + 1

    while i < n:
        c = pattern[i]
        if c == "*":
            out, i = out + "[^/]*", i + 1
        elif c == "?":
            out, i = out + "[^/]", i + 1
        elif c == "\\":
            if i + 1 >= n:
                raise bad("it ends with a backslash")
            out, i = out + re.escape(pattern[i + 1]), i + 2
        elif c == "[":
            i += 1
            negate = pattern[i : i + 1] == "^"
            i += negate
            items: list[str] = []
            while True:
                if i >= n:
                    raise bad("unfinished character class")
                if pattern[i] == "]" and items:
                    i += 1
                    break
                lo, i = char(i)
                hi = lo
                if pattern[i : i + 1] == "-":
                    hi, i = char(i + 1)
                    if hi < lo:
                        raise bad(f"range {lo}-{hi} is backwards")
                items.append(re.escape(lo) + ("-" + re.escape(hi) if hi != lo else ""))
            out += "[" + ("^" if negate else "") + "".join(items) + "]"
        else:
            out, i = out + re.escape(c), i + 1
    return re.compile(out + r"\Z")


# -- trees COPY reads from: the context here, an image's layers in copy.py ----------------------
class Tree(Protocol):
    """A read-only file tree addressed by clean relative paths ("." is the root)."""

    def lstat(self, rel: str) -> os.stat_result | None:
        """The entry itself (never followed), None if absent or not visible."""

    def listdir(self, rel: str) -> list[str]:
        """The visible names in the directory ``rel``."""

    def enter(self, rel: str) -> str | None:
        """The directory a path through ``rel`` continues in, or None."""


def _join(rel: str, name: str) -> str:
    return name if rel == "." else f"{rel}/{name}"


def expand(tree: Tree, pattern: str) -> list[str]:
    """The paths of ``tree`` that the clean relative ``pattern`` names, globs expanded."""
    if pattern == ".":
        return ["."]
    parts = pattern.split("/")
    current = ["."]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        found: list[str] = []
        for base in current:
            if has_magic(part):
                rx = glob_regex(part, "COPY")
                # a name that is the pattern itself counts too ("a[1].txt" in a
                # list that was already expanded once)
                names = [n for n in tree.listdir(base) if rx.match(n) or n == part]
            else:
                names = [part]
            for name in names:
                rel = _join(base, name)
                if last:
                    if tree.lstat(rel) is not None:
                        found.append(rel)
                elif (entered := tree.enter(rel)) is not None:
                    found.append(entered)
        current = found
    return current


def walk_tree(tree: Tree, rel: str) -> Iterator[tuple[str, os.stat_result]]:
    """``rel`` and, for a directory, everything visible below it: sorted, parents first.
    An explicit stack, not recursion: a context may nest folders thousands deep."""
    todo = [rel]  # paths still to visit, the next one last
    while todo:
        here = todo.pop()
        st = tree.lstat(here)
        if st is None:
            continue
        yield here, st
        if stat.S_ISDIR(st.st_mode):
            todo.extend(_join(here, name) for name in sorted(tree.listdir(here), reverse=True))


# -- the context ---------------------------------------------------------------------------------
class Context:
    """The build context at ``root``, with its ``.dockerignore`` rules."""

    def __init__(self, root: str, dockerfile: str = "Dockerfile") -> None:
        if not os.path.isdir(root):
            raise UsageError(f"build context {root!r}: not a directory (give the folder to build)")
        self.root = os.path.realpath(root)
        self.dockerfile = os.path.join(self.root, dockerfile)
        self._visible: dict[str, bool] = {}
        # BuildKit reads <Dockerfile>.dockerignore, next to the Dockerfile, in preference.
        try:
            fd = os.open(self.dockerfile + ".dockerignore", _FILE)
        except (FileNotFoundError, NotADirectoryError):
            try:
                fd = self.open_file(".dockerignore")
            except (FileNotFoundError, UsageError):
                fd = -1
        text = ""
        if fd >= 0:
            with os.fdopen(fd, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        self.rules = IgnoreRules(text.splitlines())

    def __repr__(self) -> str:
        return f"Context({self.root!r})"

    def ignored(self, rel: str) -> bool:
        """Does ``.dockerignore`` exclude ``rel`` (a path relative to the context)?"""
        return self.rules.matches(rel)

    # Reads, each from a directory fd reached without following any symlink.
    def _open_parent(self, rel: str) -> tuple[int, str]:
        parts = [] if rel == "." else rel.split("/")
        fd = os.open(self.root, _DIR)
        try:
            for part in parts[:-1]:
                nfd = os.open(part, _DIR, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd, (parts[-1] if parts else ".")

    def _raw_lstat(self, rel: str) -> os.stat_result | None:
        try:
            fd, base = self._open_parent(rel)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None  # a symlink (ELOOP) in the middle of the path is not followed
            raise
        try:
            return os.stat(base, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        finally:
            os.close(fd)

    def _raw_listdir(self, rel: str) -> list[str]:
        fd, base = self._open_parent(rel)
        try:
            dfd = os.open(base, _DIR, dir_fd=fd)
        finally:
            os.close(fd)
        try:
            return os.listdir(dfd)
        finally:
            os.close(dfd)

    def open_file(self, rel: str) -> int:
        """A read-only fd on the regular file ``rel`` (refused if it is anything else)."""
        fd, base = self._open_parent(rel)
        try:
            ffd = os.open(base, _FILE, dir_fd=fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(ffd).st_mode):
            os.close(ffd)
            raise UsageError(f"COPY failed: {rel} in the build context is not a regular file")
        return ffd

    def readlink(self, rel: str) -> str:
        fd, base = self._open_parent(rel)
        try:
            return os.readlink(base, dir_fd=fd)
        finally:
            os.close(fd)

    def _is_visible(self, rel: str, st: os.stat_result) -> bool:
        """Not ignored, or a directory that an exception (``!``) re-includes something in."""
        if rel not in self._visible:
            seen = not self.ignored(rel)
            if not seen and self.rules.has_exceptions and stat.S_ISDIR(st.st_mode):
                for name in self._raw_listdir(rel):
                    sub = _join(rel, name)
                    sub_st = self._raw_lstat(sub)
                    if sub_st is not None and self._is_visible(sub, sub_st):
                        seen = True
                        break
            self._visible[rel] = seen
        return self._visible[rel]

    def tree(self, *, ignore: bool = True) -> Tree:
        """The context as COPY sees it (``ignore=False``: with the ignored files too)."""
        return _ContextTree(self, ignore)

    def sources(self, patterns: Sequence[str]) -> list[str]:
        """COPY's source arguments as paths in the context: sorted, without duplicates."""
        found: set[str] = set()
        for raw in patterns:
            rel = go_clean(raw.lstrip("/"))  # an absolute path is relative to the context
            if rel == ".." or rel.startswith("../"):
                raise UsageError(f"COPY failed: forbidden path outside the build context: {raw}")
            matches = expand(self.tree(), rel)
            if not matches:
                hint = (
                    " (excluded by .dockerignore?)" if expand(self.tree(ignore=False), rel) else ""
                )
                raise UsageError(f"COPY failed: file not found in build context: {raw}{hint}")
            found.update(matches)
        return sorted(found)

    def walk(self, rel: str) -> Iterator[tuple[str, os.stat_result]]:
        """``rel`` and everything visible below it, with lstat(2): sorted, parents first."""
        return walk_tree(self.tree(), go_clean(rel))

    def digest(self, rels: Sequence[str]) -> str:
        """A sha256 of what COPY would read: paths, types, modes, link targets, contents.

        Not mtimes nor host owners: as docker's build cache, a fresh checkout of the same
        files hits the cache."""
        h = hashlib.sha256()
        for rel in sorted(set(rels)):
            for path, st in self.walk(rel):
                extra = ""
                if stat.S_ISLNK(st.st_mode):
                    extra = self.readlink(path)
                elif stat.S_ISREG(st.st_mode):
                    extra = _file_sha256(self.open_file(path))
                kind = stat.S_IFMT(st.st_mode)
                size = st.st_size if stat.S_ISREG(st.st_mode) else 0
                record = [path, kind, stat.S_IMODE(st.st_mode), size, extra]
                h.update(json.dumps(record).encode() + b"\n")
        return "sha256:" + h.hexdigest()


def _file_sha256(fd: int) -> str:
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class _ContextTree:
    def __init__(self, ctx: Context, ignore: bool) -> None:
        self.ctx, self.ignore = ctx, ignore

    def lstat(self, rel: str) -> os.stat_result | None:
        st = self.ctx._raw_lstat(rel)
        if st is None or (self.ignore and not self.ctx._is_visible(rel, st)):
            return None
        return st

    def listdir(self, rel: str) -> list[str]:
        return [n for n in self.ctx._raw_listdir(rel) if self.lstat(_join(rel, n)) is not None]

    def enter(self, rel: str) -> str | None:
        st = self.lstat(rel)
        return rel if st is not None and stat.S_ISDIR(st.st_mode) else None
