"""The build steps that write files: ``RUN`` (in a container), ``COPY``/``ADD`` (from the
context or another stage, without one) and ``WORKDIR`` (only when it creates the folder).

Each returns the descriptor of the new layer blob, written and unpacked in the step's staging
folder (:mod:`pycont.images.staging`; the build publishes it with the step's cache entry);
``WORKDIR`` of a folder the image has returns None (no layer).
"""

from __future__ import annotations

import os
import re
import tarfile
from subprocess import PIPE, STDOUT
from typing import TYPE_CHECKING, Any

from pycont.builder import config as cfgmod
from pycont.builder.dockerfile import DockerfileError, Instruction
from pycont.builder.stage import NETWORKS, BuildError, container_name
from pycont.errors import PycontError, StartError, UsageError
from pycont.images import oci
from pycont.images.oci import DEFAULT_PATH

if TYPE_CHECKING:
    from pycont.builder.stage import Builder, State
    from pycont.images.staging import Staging

__all__ = ["created_by", "layer_dirs", "layer_step", "run_env", "run_step", "sources_digest"]

_ONLY_HEREDOC = re.compile(r"""<<-?(["']?)(\w+)\1""")
RUN_FLAGS = ("network",)
COPY_FLAGS = ("from", "chown", "chmod", "link")


def layer_dirs(b: Builder, state: State) -> list[str]:
    """The stage's layers unpacked, top first (overlay's lowerdir order)."""
    dirs = [b.store.unpack(d, i) for d, i in zip(state.layers, state.diff_ids, strict=True)]
    return dirs[::-1]


def run_env(state: State) -> list[str]:
    """RUN's environment: the image's Env, the ARGs in scope that ENV does not set (docker),
    and docker's default PATH when the image has none."""
    env = list(state.run.get("Env") or [])
    keys = {e.partition("=")[0] for e in env}
    env += [f"{k}={v}" for k, v in state.args.items() if v is not None and k not in keys]
    if "PATH" not in keys:
        env.insert(0, f"PATH={DEFAULT_PATH}")
    return env


def _argv(state: State, inst: Instruction) -> list[str]:
    if inst.json:
        return list(inst.args)
    text = inst.args[0] if inst.args else ""
    if inst.heredocs:
        if len(inst.heredocs) == 1 and _ONLY_HEREDOC.fullmatch(text.strip()):
            # `RUN <<EOF` alone: the body is the script (BuildKit).
            return [*state.shell(), inst.heredocs[0].content]
        # A command that reads here-documents: the shell gets them as it would in a script.
        text += "\n" + "".join(f"{h.content}{h.name}\n" for h in inst.heredocs)
    return [*state.shell(), text]


def created_by(state: State, inst: Instruction, shown: str) -> str:
    """``docker history``'s CREATED BY of a layer step."""
    if inst.cmd == "RUN":
        argv = _argv(state, inst)
        return f"RUN {' '.join(argv)}" if not inst.json else f"RUN {cfgmod.go_list(argv)}"
    return shown


def _check_flags(inst: Instruction, accepted: tuple[str, ...]) -> None:
    for flag in inst.flags:
        if flag not in accepted:
            what = "mounts" if flag == "mount" else f"--{flag}"
            raise DockerfileError(
                f"Dockerfile:{inst.line}: {inst.cmd} --{flag}: pycont build does not support "
                f"{what} (accepted {inst.cmd} flags: {', '.join('--' + a for a in accepted)})"
            )


def run_step(
    b: Builder, state: State, inst: Instruction, number: int, stage: Staging
) -> dict[str, Any] | None:
    if inst.cmd == "RUN":
        return _run(b, state, inst, number, stage)
    if inst.cmd in ("COPY", "ADD"):
        return _copy(b, state, inst, stage)
    if inst.cmd == "WORKDIR":
        return _workdir(b, state, inst, stage)
    raise DockerfileError(f"Dockerfile:{inst.line}: {inst.cmd} is not a filesystem step")


def layer_step(
    b: Builder, state: State, inst: Instruction, number: int, shown: str, now: float, stage: Staging
) -> int | None:
    """RUN, COPY, ADD, WORKDIR: the new layer (staged) added to ``state``; its size."""
    desc = run_step(b, state, inst, number, stage)
    if desc is None:  # WORKDIR of a folder the image has
        oci.add_layer(state.config, None, created=now, created_by=shown, comment="pycont build")
        return None
    oci.add_layer(
        state.config,
        desc["digest"],
        created=now,
        created_by=created_by(state, inst, shown),
        comment="pycont build",
    )
    state.layers.append(desc)
    return int(desc["size"])


def _store_layer(b: Builder, w: Any, stage: Staging) -> dict[str, Any]:
    desc = oci.descriptor(oci.LAYER, w.digest, w.size)  # uncompressed: its digest is its diff_id
    b.store.unpack(desc, w.digest, stage)
    return desc


# -- RUN -----------------------------------------------------------------------------------
def _run(
    b: Builder, state: State, inst: Instruction, number: int, stage: Staging
) -> dict[str, Any]:
    from pycont import images
    from pycont.images.diff import write_layer
    from pycont.runtime.api import create_from_spec
    from pycont.runtime.spec import RunSpec

    _check_flags(inst, RUN_FLAGS)
    net = inst.flags.get("network", b.network)
    if net not in NETWORKS:
        raise DockerfileError(
            f"Dockerfile:{inst.line}: RUN --network={net}: accepted values are "
            + ", ".join(NETWORKS)
        )
    argv = _argv(state, inst)
    if not argv or not argv[0]:
        raise DockerfileError(f"Dockerfile:{inst.line}: RUN needs a command")
    img = images.Image(
        name="pycont-build",
        layers=tuple(layer_dirs(b, state)),
        cmd=(),
        env=tuple(run_env(state)),
        workdir=state.run.get("WorkingDir") or "/",
        user=state.run.get("User") or "",
    )
    options = dict(b.run_options)
    # BuildKit's default gives RUN the host's network through its own bridge; pycont's
    # default is loopback only (these machines reach nothing else), host when asked for.
    options["network"] = "host" if net == "host" else "none"
    spec = RunSpec.from_options(img.name, argv, name=container_name(), **options)
    c = create_from_spec(spec, image=img)
    where = f"Dockerfile:{inst.line}: {inst.original}"
    try:
        try:
            c.start(stdout=PIPE, stderr=STDOUT)
        except StartError as err:
            raise BuildError(f"{where}: {err}") from None
        assert c.stdout is not None
        for raw in iter(c.stdout.readline, b""):
            b.progress.output(number, raw.decode(errors="replace").rstrip("\n"))
        c.stdout.close()
        code = c.wait()
        if code != 0:
            raise BuildError(f"{where}: the command exited with code {code}")
        with stage.blobs.writer() as w:
            write_layer(os.path.join(c.dir, "upper"), w, userxattr=c.userxattr)
        return _store_layer(b, w, stage)
    finally:
        c.remove(force=True)


# -- COPY, ADD -----------------------------------------------------------------------------
def _from_stage(b: Builder, inst: Instruction) -> tuple[str, list[str]] | None:
    """COPY --from: (cache key of the source, its layer dirs), or None for the context."""
    frm = inst.flags.get("from")
    if frm is None:
        return None
    idx = b.stage_index(frm, inst.line)
    if idx is not None:
        src = b.stages.get(idx)
        if src is None:
            raise DockerfileError(f"Dockerfile:{inst.line}: COPY --from={frm}: stage not built")
        return src.key, layer_dirs(b, src)
    from pycont import images

    try:
        img = images.resolve(frm, b.store)
    except PycontError as err:
        raise UsageError(
            f"Dockerfile:{inst.line}: COPY --from={frm}: no stage of that name in this "
            f"Dockerfile, and no such image ({err})"
        ) from None
    return img.id, list(img.layers)


def _split(inst: Instruction) -> tuple[list[str], str, dict[str, str]]:
    if len(inst.args) < 2:
        raise DockerfileError(f"Dockerfile:{inst.line}: {inst.cmd} requires at least two arguments")
    heredocs = {h.name: h.content for h in inst.heredocs}
    srcs = list(inst.args[:-1])
    if inst.cmd == "ADD":
        for s in srcs:
            if re.match(r"^(https?|git)://|^git@", s):
                raise UsageError(
                    f"Dockerfile:{inst.line}: ADD {s}: URL sources need the network, which "
                    "builds here do not have: download it into the context and COPY it"
                )
    return srcs, inst.args[-1], heredocs


def _heredoc_name(src: str) -> str | None:
    m = _ONLY_HEREDOC.fullmatch(src)
    return m[2] if m else None


def sources_digest(b: Builder, state: State, inst: Instruction) -> str:
    """What COPY's result depends on besides its text: its sources' content and metadata."""
    _check_flags(inst, COPY_FLAGS if inst.cmd == "COPY" else (*COPY_FLAGS[1:], "checksum"))
    srcs, _dest, heredocs = _split(inst)
    files = [s for s in srcs if _heredoc_name(s) is None]
    docs = [heredocs.get(_heredoc_name(s) or "", "") for s in srcs if _heredoc_name(s)]
    stage = _from_stage(b, inst)
    if stage is not None:
        return f"{stage[0]} {files!r} {docs!r}"
    return f"{b.ctx.digest(b.ctx.sources(files)) if files else ''} {docs!r}"


def _copy(b: Builder, state: State, inst: Instruction, stage: Staging) -> dict[str, Any]:
    from pycont.builder import copy as cp

    srcs, dest, heredocs = _split(inst)
    files = [s for s in srcs if _heredoc_name(s) is None]
    docs = {n: heredocs[n] for s in srcs if (n := _heredoc_name(s)) is not None and n in heredocs}
    lowers = layer_dirs(b, state)
    other = _from_stage(b, inst)
    if other is not None:
        source = cp.from_layers(other[1])
        sources = files
    else:
        source = cp.from_context(b.ctx)
        sources = files
    chown = cp.parse_chown(inst.flags["chown"], lowers) if "chown" in inst.flags else None
    chmod = cp.parse_chmod(inst.flags["chmod"]) if "chmod" in inst.flags else None
    with stage.blobs.writer() as w:
        cp.copy_layer(
            w,
            sources,
            dest,
            src=source,
            lowers=lowers,
            workdir=state.run.get("WorkingDir") or "/",
            chown=chown,
            chmod=chmod,
            extract_archives=inst.cmd == "ADD",
            heredocs=docs,
        )
    return _store_layer(b, w, stage)


# -- WORKDIR -------------------------------------------------------------------------------
def _workdir(b: Builder, state: State, inst: Instruction, stage: Staging) -> dict[str, Any] | None:
    from pycont import overlay
    from pycont.images._tarwrite import Entry, write_tar

    path = cfgmod.workdir(state.run.get("WorkingDir") or "/", inst.args[0])
    state.run["WorkingDir"] = path
    lowers = layer_dirs(b, state)
    parts = [p for p in path.split("/") if p]
    missing = [
        "/".join(parts[:i])
        for i in range(1, len(parts) + 1)
        if not overlay.lookup(lowers, "/".join(parts[:i]))
    ]
    if not missing:
        return None
    uid = gid = 0
    user = state.run.get("User")
    if user:  # BuildKit makes the folder the current USER's
        from pycont.builder import copy as cp

        uid, gid = cp.parse_chown(user, lowers)
    entries = [Entry(rel, tarfile.DIRTYPE, 0o755, uid, gid, 0) for rel in missing]
    with stage.blobs.writer() as w:
        write_tar(entries, w)
    return _store_layer(b, w, stage)
