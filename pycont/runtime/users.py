"""Who the container's command runs as: docker's ``--user name|uid[:group|gid]``, resolved in
the container's own /etc/passwd and /etc/group.

The files read are the container's (after pivot_root, or after setns into its mount
namespace), never the host's: user ``www`` is whatever uid the image says. The rules are
docker's (runc's GetExecUser): a number is always a uid, and a uid with no passwd entry is
allowed (gid 0, HOME ``/``); a name must exist; the primary gid comes from passwd unless a
group is given, and the supplementary groups are the groups that list the user as a member.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pycont.errors import UsageError

__all__ = [
    "Identity",
    "check_mapped",
    "lookup",
    "parse_group",
    "parse_passwd",
    "resolve",
    "split",
    "validate",
]

MAX_ID = 2**31 - 1  # runc's range for uids and gids
# name|uid, then optionally :group|gid; no blanks, one colon at most.
_SPEC_RE = re.compile(r"^[^:\s]*(:[^:\s]+)?$")
PASSWD = "/etc/passwd"
GROUP = "/etc/group"


@dataclass(frozen=True)
class PasswdEntry:
    """One line of passwd(5): ``name:password:uid:gid:gecos:home:shell``."""

    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    """One line of group(5): ``name:password:gid:member,member``."""

    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Identity:
    """The ids the command gets: uid, primary gid, supplementary groups (setgroups(2)), and
    the HOME to give it when its environment has none."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    home: str = "/"

    @property
    def is_root(self) -> bool:
        return self.uid == 0


def validate(user: str) -> None:
    """UsageError unless ``user`` reads as ``name|uid[:group|gid]``."""
    if not user or not _SPEC_RE.fullmatch(user):
        raise UsageError(
            f"invalid user {user!r}: expected name|uid[:group|gid], such as 1000, "
            "nobody or 1000:1000"
        )
    for part in user.split(":"):
        if part.isdigit() and int(part) > MAX_ID:
            raise UsageError(f"invalid user {user!r}: uids and gids must be in 0-{MAX_ID}")


def split(user: str) -> tuple[str, str]:
    """``"www:staff"`` -> ``("www", "staff")``; the group is ``""`` when not given."""
    name, _, group = user.partition(":")
    return name, group


def _fields(text: str, count: int) -> list[list[str]]:
    """The lines of a colon-separated file that have at least ``count`` fields; comments,
    blank and short lines are skipped, as libc does."""
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= count:
            rows.append(parts)
    return rows


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) <= MAX_ID else None


def parse_passwd(text: str) -> list[PasswdEntry]:
    """passwd(5) entries, in file order; lines with a non-numeric uid or gid are skipped."""
    out = []
    for f in _fields(text, 7):
        uid, gid = _int(f[2]), _int(f[3])
        if uid is not None and gid is not None:
            out.append(PasswdEntry(f[0], uid, gid, f[5]))
    return out


def parse_group(text: str) -> list[GroupEntry]:
    """group(5) entries, in file order."""
    out = []
    for f in _fields(text, 4):
        gid = _int(f[2])
        if gid is not None:
            members = tuple(m.strip() for m in f[3].split(",") if m.strip())
            out.append(GroupEntry(f[0], gid, members))
    return out


def resolve(
    user: str, passwd: Sequence[PasswdEntry] = (), groups: Sequence[GroupEntry] = ()
) -> Identity:
    """The identity ``user`` names, given the container's passwd and group entries.

    Raises UsageError with docker's message when a name has no entry."""
    validate(user)
    name, group = split(user)
    uid, gid, home = 0, 0, "/"
    matched = ""
    if name:
        number = _int(name)
        # A number is always a uid, never a user called "1000" (as runc reads it).
        found = next(
            (p for p in passwd if (p.uid == number if number is not None else p.name == name)),
            None,
        )
        if found is not None:
            matched, uid, gid, home = found.name, found.uid, found.gid, found.home or "/"
        elif number is not None:
            uid = number
        else:
            raise UsageError(f"unable to find user {name}: no matching entries in passwd file")
    supplementary: tuple[int, ...] = ()
    if group:
        number = _int(group)
        entry = next(
            (g for g in groups if (g.gid == number if number is not None else g.name == group)),
            None,
        )
        if entry is not None:
            gid = entry.gid
        elif number is not None:
            gid = number
        else:
            raise UsageError(f"unable to find group {group}: no matching entries in group file")
    elif matched:
        # Only a user found by name or uid has memberships; an explicit group replaces them.
        supplementary = tuple(dict.fromkeys(g.gid for g in groups if matched in g.members))
    return Identity(uid, gid, supplementary, home)


def _read(path: str) -> str:
    """A file of the container's root; a missing one reads as empty, as in runc."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return ""
    except OSError as err:
        raise UsageError(f"read {path} to resolve the user: {err.strerror}") from err


def lookup(user: str, root: str = "") -> Identity:
    """:func:`resolve` ``user`` in the files of the root this process sees (``root`` prefixes
    the paths: a tree on the host, for tests). Call it inside the container."""
    passwd = parse_passwd(_read(root + PASSWD))
    return resolve(user, passwd, parse_group(_read(root + GROUP)))


def _mapped(ident_id: int, rows: Sequence[Sequence[int]]) -> bool:
    return any(inside <= ident_id < inside + count for inside, _outside, count in rows)


def check_mapped(
    user: str,
    ident: Identity,
    uid_map: Sequence[Sequence[int]],
    gid_map: Sequence[Sequence[int]],
    rootless: bool,
) -> None:
    """UsageError unless the container's user namespace maps the ids the command gets:
    setuid(2) to an unmapped id fails with EINVAL (user_namespaces(7)). A rootless container
    cannot set supplementary groups at all (setgroups is denied), so they are not checked."""
    ids = [("uid", ident.uid, uid_map), ("gid", ident.gid, gid_map)]
    if not rootless:
        ids += [("gid", g, gid_map) for g in ident.groups]
    for kind, number, rows in ids:
        if _mapped(number, rows):
            continue
        if rootless:
            raise UsageError(
                f"--user {user} needs a user namespace that maps it: rootless pycont maps "
                f"only {kind} 0"
            )
        raise UsageError(
            f"--user {user}: {kind} {number} is not mapped in the container's user namespace "
            f"({kind}_map {[list(r) for r in rows]})"
        )
