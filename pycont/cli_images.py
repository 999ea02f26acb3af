"""The CLI's image, volume and system verbs: images, history, tag, rmi, commit, diff, volume,
system df/prune (``pycont image ls`` and friends too, as docker spells them)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pycont.errors import PycontError, UsageError

Verb = Callable[[argparse.Namespace], int]
VERB_NAMES = (
    "images",
    "history",
    "tag",
    "rmi",
    "image",
    "commit",
    "diff",
    "pull",
    "push",
    "save",
    "load",
    "volume",
    "system",
)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from pycont.cli import _table as table

    table(header, rows)


def human_size(n: float) -> str:
    """docker's HumanSize for image sizes: 3 significant digits, decimal units (``2.15MB``)."""
    from pycont.stats_table import decimal_size

    return decimal_size(n)


def ago(ts: float) -> str:
    from pycont.cli import _ago

    return f"{_ago(ts)} ago" if ts else "N/A"


# -- images --------------------------------------------------------------------------------
def cmd_images(a: argparse.Namespace) -> int:
    from pycont.images import Store

    infos = Store().images()
    if a.quiet:
        for i in infos:
            print(i.id.split(":", 1)[1][:12])
        return 0
    rows = []
    for i in infos:
        repo, _, tag = i.reference.rpartition(":")
        rows.append((repo, tag, i.id.split(":", 1)[1][:12], ago(i.created), human_size(i.size)))
    _table(("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"), rows)
    return 0


def cmd_history(a: argparse.Namespace) -> int:
    from pycont.images import Store

    rows = []
    for h in Store().history(a.image):
        short = h.id.split(":", 1)[1][:12] if h.id.startswith("sha256:") else h.id
        by = h.created_by if a.no_trunc or len(h.created_by) <= 45 else h.created_by[:44] + "…"
        rows.append((short, ago(h.created), by, human_size(h.size), h.comment))
    _table(("IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"), rows)
    return 0


def cmd_tag(a: argparse.Namespace) -> int:
    from pycont.images import Store

    Store().tag(a.source, a.target)
    return 0


def _with_containers() -> None:
    """Load the runtime: it tells the image store which images containers still use."""
    import pycont.runtime.container  # noqa: F401


def cmd_rmi(a: argparse.Namespace) -> int:
    from pycont.images import Store

    _with_containers()
    rc = 0
    for ref in a.images:
        try:
            for line in Store().remove(ref, force=a.force):
                print(line)
        except PycontError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            rc = 1
    return rc


def image_inspect(ref: str) -> dict[str, Any]:
    """docker image inspect's main fields."""
    from pycont.images import Store

    rec = Store().get(ref)
    cfg = rec.config
    return {
        "Id": rec.id,
        "RepoTags": [rec.reference] if rec.reference else [],
        "RepoDigests": [f"{rec.reference.rpartition(':')[0]}@{rec.digest}"]
        if rec.reference
        else [],
        "Created": cfg.get("created", ""),
        "Author": cfg.get("author", ""),
        "Architecture": cfg.get("architecture", ""),
        "Os": cfg.get("os", ""),
        "Config": cfg.get("config", {}),
        "Size": rec.size,
        "RootFS": {"Type": "layers", "Layers": list(rec.diff_ids)},
        "Manifest": rec.digest,
    }


def cmd_image_inspect(a: argparse.Namespace) -> int:
    from pycont.cli import print_inspected

    return print_inspected(a.images, image_inspect, a.format)


def cmd_commit(a: argparse.Namespace) -> int:
    from pycont.runtime.container import get

    c = get(a.container)
    iid = c.commit(
        a.reference, message=a.message or "", author=a.author or "", changes=a.change, pause=a.pause
    )
    print(iid)
    return 0


def cmd_diff(a: argparse.Namespace) -> int:
    from pycont.runtime.container import get

    for kind, path in get(a.container).diff():
        print(f"{kind} {path}")
    return 0


# -- moving images: registries and archives -------------------------------------------------
def cmd_pull(a: argparse.Namespace) -> int:
    from pycont.images import progress, registry

    registry.pull(a.reference, progress=None if a.quiet else progress.auto("pull"))
    if a.quiet:
        print(registry.local_name(a.reference).canonical)
    return 0


def cmd_push(a: argparse.Namespace) -> int:
    from pycont.images import progress, registry

    _with_containers()
    digest = registry.push(a.reference, progress=None if a.quiet else progress.auto("push"))
    if a.quiet:
        print(digest)
    return 0


def cmd_save(a: argparse.Namespace) -> int:
    from pycont.images import archive

    if not a.output and sys.stdout.isatty():
        raise UsageError("save: refusing to write a tar to a terminal: use -o FILE or redirect")
    archive.save(a.images, a.output or sys.stdout.buffer, format=a.format)
    return 0


def cmd_load(a: argparse.Namespace) -> int:
    from pycont.images import archive

    if not a.input and sys.stdin.isatty():
        raise UsageError("load: give an archive with -i FILE or on stdin")
    for ref in archive.load(a.input or sys.stdin.buffer):
        print(f"Loaded image: {ref}")
    return 0


# -- volumes -------------------------------------------------------------------------------
def cmd_volume(a: argparse.Namespace) -> int:
    from pycont import volumes

    if a.volume_verb == "create":
        print(volumes.create(a.name))
    elif a.volume_verb == "ls":
        _table(("DRIVER", "VOLUME NAME"), [("local", n) for n in volumes.names()])
    elif a.volume_verb == "inspect":
        print(json.dumps([volumes.inspect(n) for n in a.names], indent=4))
    elif a.volume_verb == "rm":
        rc = 0
        for n in a.names:
            try:
                volumes.remove(n, force=a.force)
                print(n)
            except PycontError as err:
                print(f"Error response from daemon: {err}", file=sys.stderr)
                rc = 1
        return rc
    elif a.volume_verb == "prune":
        for n in volumes.names():
            if not volumes.users(n):
                volumes.remove(n)
                print(f"Deleted Volume: {n}")
    return 0


# -- system --------------------------------------------------------------------------------
def cmd_system(a: argparse.Namespace) -> int:
    from pycont.images import Store

    _with_containers()
    if a.system_verb == "df":
        du = Store().disk_usage()
        if a.verbose:
            print("Images space usage:\n")
            _table(
                (
                    "REPOSITORY",
                    "TAG",
                    "IMAGE ID",
                    "CREATED",
                    "SIZE",
                    "SHARED SIZE",
                    "UNIQUE SIZE",
                    "CONTAINERS",
                ),
                [
                    (
                        *_repo_tag(u.reference),
                        u.id.split(":", 1)[1][:12],
                        ago(u.created),
                        human_size(u.size),
                        human_size(u.shared_size),
                        human_size(u.unique_size),
                        str(u.containers),
                    )
                    for u in du.images
                ],
            )
            print(
                f"\nTotal: {human_size(du.total)} in {du.layers} distinct layers "
                f"(the sum of image sizes would be {human_size(du.naive_total)}: "
                "shared layers are stored once)"
            )
        else:
            active = sum(1 for u in du.images if u.containers)
            reclaim = sum(u.unique_size for u in du.images if not u.containers)
            _table(
                ("TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"),
                [
                    (
                        "Images",
                        str(len(du.images)),
                        str(active),
                        human_size(du.total),
                        human_size(reclaim),
                    )
                ],
            )
        return 0
    if a.system_verb == "prune":
        from pycont.runtime.container import containers

        if not a.force:
            print(
                "WARNING! This removes all stopped containers and "
                f"{'all unused' if a.all else 'dangling'} images (use -f to skip this note)",
                file=sys.stderr,
            )
        removed = 0
        for c in containers(all=True):
            try:
                if c.status == "exited":
                    c.remove()
                    print(f"Deleted Container: {c.id}")
                    removed += 1
            except PycontError:
                continue
        reclaimed = Store().prune(dangling=not a.all)
        print(f"Total reclaimed space: {human_size(reclaimed)}")
        return 0
    raise UsageError("system: expected df or prune")


def _repo_tag(reference: str) -> tuple[str, str]:
    repo, _, tag = reference.rpartition(":")
    return repo, tag


# -- parser --------------------------------------------------------------------------------
def add_parsers(sub: Any) -> dict[str, Verb]:
    """Add the image, volume and system verbs; returns verb name -> handler."""
    verbs: dict[str, Verb] = {}

    p = sub.add_parser("images", help="list images")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-a", "--all", action="store_true")
    verbs["images"] = cmd_images

    p = sub.add_parser("history", help="the layers of an image: what made each, and its size")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("image")
    verbs["history"] = cmd_history

    p = sub.add_parser("tag", help="give an image another name")
    p.add_argument("source")
    p.add_argument("target")
    verbs["tag"] = cmd_tag

    p = sub.add_parser("rmi", help="remove images (refused while a container uses one)")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("images", nargs="+")
    verbs["rmi"] = cmd_rmi

    p = sub.add_parser("image", help="manage images: ls, rm, inspect, history, tag, prune")
    isub = p.add_subparsers(dest="image_verb", metavar="COMMAND")
    isub.required = True
    q = isub.add_parser("ls", help="list images")
    q.add_argument("-q", "--quiet", action="store_true")
    q.add_argument("-a", "--all", action="store_true")
    q = isub.add_parser("rm", help="remove images")
    q.add_argument("-f", "--force", action="store_true")
    q.add_argument("images", nargs="+")
    q = isub.add_parser("inspect", help="an image's config and layers, as JSON")
    q.add_argument("-f", "--format")
    q.add_argument("images", nargs="+")
    q = isub.add_parser("history", help="the layers of an image")
    q.add_argument("--no-trunc", action="store_true")
    q.add_argument("image")
    q = isub.add_parser("tag", help="give an image another name")
    q.add_argument("source")
    q.add_argument("target")
    q = isub.add_parser("prune", help="remove unused images and their layers")
    q.add_argument("-a", "--all", action="store_true")
    q.add_argument("-f", "--force", action="store_true")
    image_verbs: dict[str, Verb] = {
        "ls": cmd_images,
        "rm": cmd_rmi,
        "inspect": cmd_image_inspect,
        "history": cmd_history,
        "tag": cmd_tag,
        "prune": lambda a: cmd_system(argparse.Namespace(**{**vars(a), "system_verb": "prune"})),
    }
    verbs["image"] = lambda a: image_verbs[a.image_verb](a)

    p = sub.add_parser("commit", help="make an image from a container's changes")
    p.add_argument("-m", "--message")
    p.add_argument("-a", "--author")
    p.add_argument(
        "-c",
        "--change",
        action="append",
        default=[],
        help="a Dockerfile instruction: CMD, ENTRYPOINT, ENV, WORKDIR, LABEL, ...",
    )
    p.add_argument("-p", "--pause", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("container")
    p.add_argument("reference", nargs="?")
    verbs["commit"] = cmd_commit

    p = sub.add_parser("diff", help="files a container added (A), changed (C), deleted (D)")
    p.add_argument("container")
    verbs["diff"] = cmd_diff

    p = sub.add_parser("pull", help="download an image from a registry (or dir:PATH:IMAGE)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("reference")
    verbs["pull"] = cmd_pull

    p = sub.add_parser("push", help="upload an image to a registry (or dir:PATH:IMAGE)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("reference")
    verbs["push"] = cmd_push

    p = sub.add_parser("save", help="write images to a tar (docker-archive or oci-archive)")
    p.add_argument("-o", "--output")
    p.add_argument("--format", default="docker-archive", choices=("docker-archive", "oci-archive"))
    p.add_argument("images", nargs="+")
    verbs["save"] = cmd_save

    p = sub.add_parser("load", help="read images from a tar made by save (pycont, docker, podman)")
    p.add_argument("-i", "--input")
    verbs["load"] = cmd_load

    p = sub.add_parser("volume", help="manage volumes: create, ls, inspect, rm, prune")
    vsub = p.add_subparsers(dest="volume_verb", metavar="COMMAND")
    vsub.required = True
    vsub.add_parser("create", help="create a named volume").add_argument("name")
    vsub.add_parser("ls", help="list volumes")
    vsub.add_parser("inspect", help="a volume's mount point and users, as JSON").add_argument(
        "names", nargs="+"
    )
    q = vsub.add_parser("rm", help="remove volumes and their data (refused while in use)")
    q.add_argument("-f", "--force", action="store_true")
    q.add_argument("names", nargs="+")
    vsub.add_parser("prune", help="remove the volumes no container uses")
    verbs["volume"] = cmd_volume

    p = sub.add_parser("system", help="disk usage and clean-up: df, prune")
    ssub = p.add_subparsers(dest="system_verb", metavar="COMMAND")
    ssub.required = True
    ssub.add_parser(
        "df", help="disk used by images (-v: per image, shared and unique)"
    ).add_argument("-v", "--verbose", action="store_true")
    q = ssub.add_parser("prune", help="remove stopped containers and unused images")
    q.add_argument("-a", "--all", action="store_true")
    q.add_argument("-f", "--force", action="store_true")
    verbs["system"] = cmd_system
    return verbs
