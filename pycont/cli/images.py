"""The CLI's image verbs: images, history, tag, rmi, commit, diff, pull, push, save, load,
and ``pycont image ls|rm|inspect|history|tag|prune`` as docker spells them, plus
``pycont image import-debian`` (an image from the host's installed Debian packages).

Images are read-only stacks of layers in pycont.images' store; a container's read/write layer
becomes a new one with ``commit``; ``pull``/``push`` and ``save``/``load`` move them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pycont.cli._common import Verb, created_ago, print_inspected, table, with_containers
from pycont.errors import PycontError, UsageError
from pycont.format import decimal_size


# -- images -------------------------------------------------------------------------------
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
        rows.append(
            (repo, tag, i.id.split(":", 1)[1][:12], created_ago(i.created), decimal_size(i.size))
        )
    table(("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"), rows)
    for i in infos:
        if i.problem:
            print(
                f"warning: image {i.reference} is broken: {i.problem}; `pycont rmi "
                f"{i.id.split(':', 1)[1][:12]}` removes it",
                file=sys.stderr,
            )
    return 0


def cmd_history(a: argparse.Namespace) -> int:
    from pycont.images import Store

    rows = []
    for h in Store().history(a.image):
        short = h.id.split(":", 1)[1][:12] if h.id.startswith("sha256:") else h.id
        by = h.created_by if a.no_trunc or len(h.created_by) <= 45 else h.created_by[:44] + "…"
        rows.append((short, created_ago(h.created), by, decimal_size(h.size), h.comment))
    table(("IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"), rows)
    return 0


def cmd_tag(a: argparse.Namespace) -> int:
    from pycont.images import Store

    Store().tag(a.source, a.target)
    return 0


def cmd_rmi(a: argparse.Namespace) -> int:
    from pycont.images import Store

    with_containers()
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
    from pycont.images import Store, distribution

    store = Store()
    rec = store.get(ref)
    cfg = rec.config
    # every name of the image id, however it was looked up (docker lists them all)
    tags = sorted({i.reference for i in store.images() if i.id == rec.id} - {"<none>:<none>"})
    # repo@digest is known only for an image pulled or pushed (the registry's manifest digest)
    digests = distribution.repo_digests(store, rec.id)
    return {
        "Id": rec.id,
        "RepoTags": tags,
        "RepoDigests": digests,
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
_MAX_LAYER_HELP = "refuse a layer larger than this uncompressed (default 8g, 0 for none)"


def _print_warnings(store: Any) -> None:
    """What the store left out while unpacking (rootless: device nodes), one line each."""
    for line in store.warnings:
        print(f"warning: {line}", file=sys.stderr)


def cmd_pull(a: argparse.Namespace) -> int:
    from pycont.images import Store, progress, registry
    from pycont.images.limits import set_max_layer_size

    set_max_layer_size(a.max_layer_size)
    store = Store()
    registry.pull(a.reference, store, progress=None if a.quiet else progress.auto("pull"))
    _print_warnings(store)
    if a.quiet:
        print(registry.local_name(a.reference).canonical)
    return 0


def cmd_push(a: argparse.Namespace) -> int:
    from pycont.images import progress, registry

    with_containers()
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
    from pycont.images import Store, archive
    from pycont.images.limits import set_max_layer_size

    set_max_layer_size(a.max_layer_size)
    if not a.input and sys.stdin.isatty():
        raise UsageError("load: give an archive with -i FILE or on stdin")
    store = Store()
    for ref in archive.load(a.input or sys.stdin.buffer, store):
        print(f"Loaded image: {ref}")
    _print_warnings(store)
    return 0


def cmd_import_debian(a: argparse.Namespace) -> int:
    from pycont.images.debian import import_debian

    done = import_debian(a.packages, a.tag)
    name = done.record.reference or done.record.short_id
    if done.up_to_date:
        print(f"{name} is up to date ({done.what})")
        return 0
    for note in done.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"Imported {name}: {done.what} + {len(done.libraries)} libraries, "
        f"{decimal_size(done.record.size)} in {done.seconds:.1f}s"
    )
    print(done.record.id)
    return 0


def _image_prune(a: argparse.Namespace) -> int:
    """``image prune`` is ``system prune`` here: it also removes the stopped containers, whose
    images would otherwise stay in use (docker's removes images only)."""
    from pycont.cli.system import cmd_system

    return cmd_system(argparse.Namespace(**{**vars(a), "system_verb": "prune"}))


# -- parser --------------------------------------------------------------------------------
def add_parsers(sub: Any) -> dict[str, Verb]:
    """Add the image verbs; returns verb name -> handler."""
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

    p = sub.add_parser(
        "image", help="manage images: ls, rm, inspect, history, tag, prune, import-debian"
    )
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
    q = isub.add_parser(
        "import-debian",
        help="an image from Debian packages installed on this host (nothing is downloaded)",
        description="Make an image from installed Debian packages, on top of busybox: the "
        "files dpkg lists for each package (without /usr/share/doc, man, info and locale), "
        "the shared libraries its programs need (ELF DT_NEEDED, transitively, and the "
        "loader), /etc/passwd, /etc/group and /etc/nsswitch.conf. Default name: "
        "<image>:<major version>, e.g. nodejs 20.x gives node:20. Run again: nothing is "
        "written while the host's files are the same.",
    )
    q.add_argument("-t", "--tag", help="the image's name (default: node:20 for nodejs 20.x)")
    q.add_argument("packages", nargs="+", metavar="PACKAGE")
    image_verbs: dict[str, Verb] = {
        "ls": cmd_images,
        "rm": cmd_rmi,
        "inspect": cmd_image_inspect,
        "history": cmd_history,
        "tag": cmd_tag,
        "prune": _image_prune,
        "import-debian": cmd_import_debian,
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
    p.add_argument("--max-layer-size", metavar="SIZE", help=_MAX_LAYER_HELP)
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
    p.add_argument("--max-layer-size", metavar="SIZE", help=_MAX_LAYER_HELP)
    verbs["load"] = cmd_load

    return verbs
