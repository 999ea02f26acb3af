"""``docker build``: a Dockerfile and a context become an image in the store.

Each stage starts from its ``FROM`` (an image, an earlier stage, or ``scratch``) and carries
the image config and the layers so far. ``RUN`` runs its command in a pycont container on those
layers (the same isolation and limits as ``pycont run``) and its read/write layer becomes the
step's layer; ``COPY``/``ADD`` write a layer from the context without a container
(:mod:`pycont.builder.copy`); ``WORKDIR`` makes a layer only when it creates the folder; the rest
change only the config (an ``empty_layer`` in the history, as docker records it).

Every step is looked up in the build cache first (:mod:`pycont.images.buildcache`). Nothing is
named until the whole build has succeeded: a failing step leaves no image and no tag, its
container is removed, and only the steps that completed are in the cache (as docker keeps them).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pycont import failpoints
from pycont.builder import config as cfgmod
from pycont.builder.context import Context
from pycont.builder.dockerfile import Dockerfile, DockerfileError, Instruction, Stage, expand, parse
from pycont.builder.progress import BuildResult, Plain, Progress, StepResult
from pycont.builder.stage import NETWORKS, BuildError, State
from pycont.errors import PycontError, UsageError
from pycont.images import buildcache as cache
from pycont.images import oci
from pycont.images.reference import Reference
from pycont.images.store import Store

__all__ = ["BuildError", "build"]  # BuildError: from pycont.builder.stage

# docker's predefined ARGs: accepted as --build-arg without an ARG line, never warned about.
PREDEFINED_ARGS = frozenset(
    a
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for a in (name, name.lower())
)
CONFIG_ONLY = frozenset(
    {
        "ENV",
        "LABEL",
        "MAINTAINER",
        "EXPOSE",
        "VOLUME",
        "USER",
        "STOPSIGNAL",
        "SHELL",
        "CMD",
        "ENTRYPOINT",
        "HEALTHCHECK",
        "ONBUILD",
    }
)


class _Builder:
    def __init__(
        self,
        df: Dockerfile,
        ctx: Context,
        *,
        build_args: Mapping[str, str],
        no_cache: bool,
        network: str,
        progress: Progress,
        run_options: Mapping[str, Any],
        store: Store,
    ) -> None:
        self.df = df
        self.ctx = ctx
        self.build_args = dict(build_args)
        self.used_args: set[str] = set()
        self.no_cache = no_cache
        self.network = network
        self.progress = progress
        self.run_options = dict(run_options)
        self.store = store
        self.stages: dict[int, State] = {}
        self.steps: list[StepResult] = []
        self.meta: dict[str, str | None] = {}
        for inst in df.meta_args:
            for k, v in expand(inst, self._known(self.meta), df.escape).pairs:
                self.meta[k] = self.build_args.get(k, v)
                if k in self.build_args:
                    self.used_args.add(k)

    @staticmethod
    def _known(args: Mapping[str, str | None]) -> dict[str, str]:
        return {k: v for k, v in args.items() if v is not None}

    # -- stages ----------------------------------------------------------------------------
    def stage_index(self, name: str, line: int) -> int | None:
        """The stage ``name`` refers to (a stage name, or its number), or None: an image."""
        for st in self.df.stages:
            if st.name is not None and st.name == name.lower():
                return st.index
        if name.isdigit():
            n = int(name)
            if n >= len(self.df.stages):
                raise DockerfileError(f"Dockerfile:{line}: no stage number {n} in this Dockerfile")
            return n
        return None

    def needed(self, target: int) -> list[int]:
        """The stages ``target`` depends on (through FROM and COPY --from), in order."""
        want, todo = set(), [target]
        while todo:
            i = todo.pop()
            if i in want:
                continue
            want.add(i)
            st = self.df.stages[i]
            base = expand(st.from_, self._known(self.meta), self.df.escape).args[0]
            dep = self.stage_index(base, st.from_.line)
            if dep is not None and dep < i:
                todo.append(dep)
            for inst in st.instructions:
                src = inst.flags.get("from")
                if src is not None and inst.cmd in ("COPY", "ADD"):
                    dep = self.stage_index(src, inst.line)
                    if dep is not None:
                        if dep >= i:
                            raise DockerfileError(
                                f"Dockerfile:{inst.line}: COPY --from={src}: a stage can only "
                                "copy from a stage defined before it"
                            )
                        todo.append(dep)
        return sorted(want)

    def run_stage(self, st: Stage) -> State:
        label_name = st.name or ("" if st.index == len(self.df.stages) - 1 else f"stage-{st.index}")
        state = self.start(st)
        triggers = [self._trigger(t, st.from_.line) for t in state.run.pop("OnBuild", None) or ()]
        todo = [*triggers, *st.instructions]
        total = len(todo) + 1
        for i, inst in enumerate(todo, start=2):
            label = f"[{label_name + ' ' if label_name else ''}{i}/{total}]"
            self.step(state, inst, label)
        return state

    def _trigger(self, text: str, line: int) -> Instruction:
        """An ONBUILD trigger of the base image, parsed as the instruction it is."""
        df = parse(f"FROM scratch\n{text}\n", path="ONBUILD")
        (inst,) = df.stages[0].instructions
        if inst.cmd in ("ONBUILD", "FROM", "MAINTAINER"):
            raise DockerfileError(
                f"Dockerfile:{line}: the base image's ONBUILD {text}: not allowed"
            )
        return inst

    def start(self, st: Stage) -> State:
        t0 = time.monotonic()
        number = len(self.steps) + 1
        base = expand(st.from_, self._known(self.meta), self.df.escape).args[0]
        label = f"[{st.name + ' ' if st.name else ''}1/{len(st.instructions) + 1}]"
        self.progress.begin(number, label, f"FROM {base}")
        dep = self.stage_index(base, st.from_.line)
        if dep is not None and dep < st.index:  # a stage only names the stages before it
            parent = self.stages[dep]
            state = State(st.name, copy.deepcopy(parent.config), list(parent.layers), parent.key)
        elif base.lower() == "scratch":
            config = oci.new_config(created=0, cmd=(), env=())
            config["config"] = {}
            state = State(st.name, config, [], cache.key("scratch"))
        else:
            from pycont import images

            try:
                img = images.resolve(base, self.store)
            except PycontError as err:
                raise BuildError(f"Dockerfile:{st.from_.line}: FROM {base}: {err}") from None
            rec = self.store.get(img.id)
            state = State(
                st.name,
                copy.deepcopy(rec.config),
                list(rec.manifest["layers"]),
                cache.key("image", rec.id),
            )
        state.args = {}
        self.steps.append(StepResult(number, label, f"FROM {base}", False, 0.0, None))
        self.progress.end(number, False, time.monotonic() - t0)
        return state

    # -- steps -----------------------------------------------------------------------------
    def step(self, state: State, raw: Instruction, label: str) -> None:
        t0 = time.monotonic()
        number = len(self.steps) + 1
        if raw.cmd == "ARG":
            inst = expand(raw, state.substitution_env(), self.df.escape)
            shown = "ARG " + " ".join(k if v is None else f"{k}={v}" for k, v in inst.pairs)
            self.progress.begin(number, label, shown)
            for k, default in inst.pairs:
                if k in self.build_args:
                    self.used_args.add(k)
                    state.args[k] = self.build_args[k]
                elif default is None and k in self.meta:
                    state.args[k] = self.meta[k]
                else:
                    state.args[k] = default
            # An ARG changes no file and no config; its value reaches RUN through the key.
            self._record(number, label, shown, True, t0, None, cached_text=False)
            return
        inst = expand(raw, state.substitution_env(), self.df.escape)
        shown = self._shown(inst)
        self.progress.begin(number, label, shown)
        extra = self._key_extra(state, inst)
        key = cache.key(state.key, shown, *extra)
        hit = None if self.no_cache else cache.load(self.store.root, key)
        if hit is not None and all(
            os.path.exists(self.store.blobs.path(d["digest"])) for d in hit.layers
        ):
            state.config, state.layers, state.key = copy.deepcopy(hit.config), list(hit.layers), key
            if inst.cmd == "CMD":
                state.flags["cmd_set"] = True
            self._record(number, label, shown, True, t0, _layer_size(hit))
            return
        size: int | None = None
        now = time.time()
        if inst.cmd in CONFIG_ONLY:
            created_by = cfgmod.apply(state.run, inst, state.shell(), state.flags)
            if inst.cmd == "MAINTAINER":  # docker sets the image's author; the label is ours
                state.config["author"] = " ".join(inst.args)
            oci.add_layer(
                state.config, None, created=now, created_by=created_by, comment="pycont build"
            )
            state.key = key
            cache.save(self.store.root, cache.CacheEntry(key, state.config, state.layers))
        else:
            from pycont.builder import steps

            # The step's layer waits in a staging folder; it enters the store together with
            # the cache entry that names it, so a failed step leaves nothing behind.
            with self.store.stage() as stage:
                size = steps.layer_step(self, state, inst, number, shown, now, stage)
                state.key = key
                entry = cache.CacheEntry(key, state.config, state.layers)
                stage.publish(
                    [d["digest"] for d in state.layers],
                    state.diff_ids,
                    lambda: cache.save(self.store.root, entry),
                )
            failpoints.hit("build.step-committed")  # the step's layer and cache entry are in
        self._record(number, label, shown, False, t0, size)

    def _record(
        self,
        number: int,
        label: str,
        shown: str,
        cached: bool,
        t0: float,
        size: int | None,
        cached_text: bool = True,
    ) -> None:
        seconds = time.monotonic() - t0
        self.steps.append(StepResult(number, label, shown, cached and cached_text, seconds, size))
        self.progress.end(number, cached and cached_text, seconds)

    def _shown(self, inst: Instruction) -> str:
        """The instruction after substitution, as the progress lines and the cache key see it."""
        if inst.cmd in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "HEALTHCHECK", "ONBUILD"):
            return inst.original
        flags = " ".join(f"--{k}={v}" for k, v in sorted(inst.flags.items()))
        if inst.pairs:
            body = " ".join(f"{k}={v or ''}" for k, v in inst.pairs)
        else:
            body = " ".join(inst.args)
        return " ".join(x for x in (inst.cmd, flags, body) if x)

    def _key_extra(self, state: State, inst: Instruction) -> list[str]:
        """What besides the text decides a step's result: RUN's environment, COPY's sources."""
        from pycont.builder import steps

        if inst.cmd == "RUN":
            return [
                repr(steps.run_env(state)),
                repr(inst.heredocs),
                self.network,
                repr(sorted(self.run_options.items())),
            ]
        if inst.cmd in ("COPY", "ADD"):
            return [steps.sources_digest(self, state, inst)]
        return []

    # -- the end ---------------------------------------------------------------------------
    def finish(self, state: State, tags: Sequence[Reference]) -> str:
        rec = self.store.add_image(
            tags[0] if tags else None, state.config, state.layers, step="build.published"
        )
        for t in tags[1:]:
            self.store.tag(rec.id, str(t))
        return rec.id


def build(
    context: str = ".",
    tags: str | Sequence[str] = (),
    *,
    dockerfile: str | None = None,
    text: str | None = None,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    no_cache: bool = False,
    network: str = "default",
    progress: Progress | None = None,
    **run_options: Any,
) -> BuildResult:
    """``docker build -t TAG CONTEXT``: build the Dockerfile in ``context`` (or ``dockerfile``,
    a path, or ``text``, its content) into an image named ``tags``. Returns what was built.

    ``network``: the RUN steps' network, ``default`` (pycont's: a namespace with only ``lo``),
    ``none`` (the same), or ``host`` (the host's network, for steps that must reach a package
    registry). ``run_options``: the RUN containers' limits, as :func:`pycont.run` takes them
    (``memory="256m"``, ``cpus=1``, ``pids_limit=512``)."""
    t0 = time.monotonic()
    names = [tags] if isinstance(tags, str) else list(tags)
    refs = []
    for name in names:
        ref = Reference.parse(name)
        if ref.digest:
            raise UsageError(f"invalid tag {name!r}: a build's tag cannot be a digest")
        refs.append(ref)
    if network not in NETWORKS:
        raise UsageError(f"invalid network {network!r}: accepted values are {', '.join(NETWORKS)}")
    from pycont.runtime.spec import LIMIT_OPTIONS

    unknown = sorted(set(run_options) - set(LIMIT_OPTIONS))
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r}: accepted are {', '.join(LIMIT_OPTIONS)}")
    ctx = Context(context, os.path.basename(dockerfile) if dockerfile else "Dockerfile")
    path = "Dockerfile"
    if text is None:
        path = dockerfile or os.path.join(ctx.root, "Dockerfile")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            raise UsageError(
                f"unable to read the Dockerfile {path}: {err.strerror or err} "
                "(give another with -f FILE)"
            ) from None
        path = os.path.basename(path)
    df = parse(text, path=path)
    prog = progress or Plain()
    for note in df.notes:
        prog.note(note)
    store = Store()
    b = _Builder(
        df,
        ctx,
        build_args=build_args or {},
        no_cache=no_cache,
        network=network,
        progress=prog,
        run_options=run_options,
        store=store,
    )
    last = len(df.stages) - 1
    if target is not None:
        found = b.stage_index(target, 0) if not target.isdigit() else None
        if found is None:
            names_ = ", ".join(s.name for s in df.stages if s.name) or "none are named"
            raise UsageError(f"target stage {target!r} could not be found: stages are {names_}")
        last = found
    with store.writing():
        for i in b.needed(last):
            b.stages[i] = b.run_stage(df.stages[i])
        image_id = b.finish(b.stages[last], refs)
    unused = sorted(set(b.build_args) - b.used_args - PREDEFINED_ARGS)
    notes = list(df.notes)
    if unused:
        note = f"[Warning] One or more build-args {unused} were not consumed"
        prog.note(note)
        notes.append(note)
    result = BuildResult(
        id=image_id,
        tags=[str(r) for r in refs],
        steps=b.steps,
        seconds=time.monotonic() - t0,
        notes=notes,
    )
    prog.finish(result)
    return result


def _layer_size(hit: cache.CacheEntry) -> int | None:
    """The size of the layer a cached step made; None when it made none (config only)."""
    history: list[dict[str, Any]] = list(hit.config.get("history") or ())
    if not history or history[-1].get("empty_layer", False) or not hit.layers:
        return None
    return int(hit.layers[-1]["size"])
