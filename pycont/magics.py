"""The IPython extension: ``%load_ext pycont``.

``%%container [options] IMAGE`` runs the cell as a shell script in a new container and streams
its output into the notebook; it stands for ``pycont.run(IMAGE, ["sh", "-c", CELL], ...)``.
``%%vm [options] IMAGE`` does the same in a new VM (the image booted under its own kernel by
qemu): ``pycont.vm.run(IMAGE, ["sh", "-c", CELL], ...)``.
``%%dockerfile -t NAME`` builds the cell as a Dockerfile: ``pycont.build(CONTEXT, NAME,
text=CELL)``.
``%pycont ARGS`` runs the CLI (``pycont ARGS``) with its output in the notebook. Loading the
extension also shows containers and probes as HTML tables (:func:`pycont.display.register`).
Errors a user makes print one line, without a traceback.
"""

from __future__ import annotations

import argparse
import atexit
import codecs
import contextlib
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand

from pycont.errors import PycontError
from pycont.runtime.output import OUTPUT_TAIL as OUTPUT_TAIL  # shown after the notice
from pycont.runtime.output import OutputCap

# {NAME} alone, not inside a docker template's {{...}}.
_NAME_IN_BRACES = re.compile(r"(?<!\{)\{([A-Za-z_]\w*)\}(?!\})")


def expand_names(line: str, namespace: Mapping[str, Any]) -> str:
    """``{NAME}`` -> the value of the notebook variable NAME (``%pycont push {REGISTRY}/app``).

    IPython's own expansion would also turn ``{{.State.Pid}}`` into ``{.State.Pid}``, so
    ``%pycont`` opts out of it and does only this: anything that is not a defined name in
    single braces stays as typed."""
    return _NAME_IN_BRACES.sub(lambda m: str(namespace.get(m[1], m[0])), line)


# Containers started from this kernel and not detached: removed when the kernel shuts down.
_started: list[Any] = []
# VMs started by %%vm cells without -d and without --rm: the same.
_started_vms: list[Any] = []


def _cleanup() -> None:
    for c in _started:
        with contextlib.suppress(PycontError, OSError):
            if not c.config.detach:
                c.remove(force=True)
    for v in _started_vms:
        with contextlib.suppress(PycontError, OSError):
            v.remove(force=True)


def _run_parser() -> argparse.ArgumentParser:
    from pycont.cli import Parser, add_run_flags

    p = Parser(prog="%%container", add_help=False)
    add_run_flags(p)
    p.add_argument("image")
    return p


# A notebook cell cannot show gigabytes: past this budget, output is counted, not shown
# (the same cap as pycont.run's max_output, see pycont.runtime.output).
OUTPUT_BUDGET = 1 << 20  # bytes shown per cell
DEFAULT_PIDS_LIMIT = 1024


def stream_output(fd: int, out: Any, budget: int = OUTPUT_BUDGET) -> int:
    """Copy a container's output to ``out`` until EOF; past ``budget`` bytes keep draining the
    pipe (so the container never blocks on a full pipe) but show only a notice and the tail.
    Returns the number of bytes read."""
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    cap = OutputCap(b"", budget)
    while chunk := os.read(fd, 65536):
        if shown := cap.feed(chunk):
            out.write(decode(shown))
    out.write(cap.finish(decode, "shown", f"cell budget {budget:,} bytes"))
    return cap.total


class ContainerRunner:
    """The logic behind ``%%container``, kept apart from IPython so it can be tested alone."""

    def __init__(self, out: Any = None) -> None:
        self.out = out

    def run(self, line: str, cell: str) -> int:
        from pycont.cli import exit_reason, run_options, start_new

        try:
            a = _run_parser().parse_args(shlex.split(line))
        except (PycontError, ValueError) as err:  # ValueError: shlex, an unclosed quote
            raise IPythonUsageError(f"%%container: {err}") from None
        except SystemExit:  # --help printed the flags: nothing to run
            return 0
        options = run_options(a)
        options["interactive"] = False  # the cell is the script: no stdin from the kernel
        if os.geteuid() == 0:
            # A runaway cell (a fork bomb) must not take the host's pids: unless told otherwise
            # a cell's container gets at most DEFAULT_PIDS_LIMIT processes.
            options.setdefault("pids_limit", str(DEFAULT_PIDS_LIMIT))
        out = self.out or sys.stdout
        say = (lambda s: print(f"[pycont] {s}", file=out)) if a.narrate else False
        c = start_new(
            a.image,
            ["sh", "-c", cell],
            detach=a.detach,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            narrate=say,
            via=None,  # the runtime's default, its fork server: a kernel has threads, never fork it
            **options,
        )
        _started.append(c)
        if a.detach:
            print(f"{c.name} ({c.short_id}) started in the background", file=out)
            return 0
        assert c.stdout is not None
        try:
            stream_output(c.stdout.fileno(), out)
        except KeyboardInterrupt:
            c.remove(force=True)
            print("interrupted: container killed", file=out)
            return 130
        code = c.wait()
        if code:
            reason = exit_reason(c)
            print(f"[exit code {code}: {reason}]" if reason else f"[exit code {code}]", file=out)
        return code


def _vm_parser() -> argparse.ArgumentParser:
    from pycont.cli import Parser
    from pycont.cli.vms import add_vm_run_flags

    p = Parser(prog="%%vm")
    add_vm_run_flags(p)
    p.add_argument("image")
    return p


class BudgetedOutput:
    """``on_output`` for a VM's output: shown up to ``budget`` characters, then only counted,
    and the tail shown at the end (as :func:`stream_output` does for a container's pipe)."""

    def __init__(self, out: Any, budget: int = OUTPUT_BUDGET) -> None:
        self.out = out
        self.budget = budget
        self.cap = OutputCap("", budget)

    @property
    def total(self) -> int:
        return self.cap.total

    def __call__(self, text: str) -> None:
        if shown := self.cap.feed(text):
            self.out.write(shown)

    def close(self) -> None:
        if self.cap.dropped:
            self.out.write(self.cap.notice("shown", f"cell budget {self.budget:,}", "characters"))
        self.out.write(self.cap.tail)
        self.cap.tail = ""  # shown: a second close() shows nothing more


class VMRunner:
    """The logic behind ``%%vm``, kept apart from IPython so it can be tested alone."""

    def __init__(self, out: Any = None) -> None:
        self.out = out

    def run(self, line: str, cell: str) -> int:
        import secrets

        import pycont.vm as vm
        from pycont.cli.vms import boot_options
        from pycont.vm.machine import parse_cpus, parse_memory

        try:
            a = _vm_parser().parse_args(shlex.split(line))
            options = boot_options(a)
            # checked here too, so that a bad value is a usage error of the cell's line
            parse_cpus(a.cpus)
            if a.memory is not None:
                parse_memory(a.memory)
        except (PycontError, ValueError) as err:  # ValueError: shlex, an unclosed quote
            raise IPythonUsageError(f"%%vm: {err}") from None
        except SystemExit:  # --help printed the flags: nothing to run
            return 0
        out = self.out or sys.stdout
        argv = ["sh", "-c", cell]
        if a.detach:
            v = vm.boot(a.image, argv, **options)
            print(f"{v.name} ({v.short_id}) started in the background", file=out)
            return 0
        if a.name is None and not a.rm:
            # run() returns the VM only once it has ended: a name known beforehand lets an
            # interrupted cell find (and remove) the VM that run() killed.
            options["name"] = f"vm_cell_{secrets.token_hex(4)}"
        shown = BudgetedOutput(out)
        try:
            v = vm.run(a.image, argv, timeout=a.timeout, on_output=shown, **options)
        except KeyboardInterrupt:
            # run() has killed the VM (and removed it with --rm); boot() leaves nothing
            if not a.rm:
                with contextlib.suppress(PycontError, OSError):
                    vm.get(options["name"]).remove(force=True)
            shown.close()
            print("interrupted: VM killed", file=out)
            return 130
        shown.close()
        if not a.rm:
            _started_vms.append(v)
        if v.exit_code is None:
            print(f"[VM ended without an exit code: {v.exit_reason}]", file=out)
            return 125
        if v.exit_code:
            print(f"[exit code {v.exit_code}]", file=out)
        return v.exit_code


def _dockerfile_parser() -> argparse.ArgumentParser:
    from pycont.cli import Parser, add_limit_flags

    p = Parser(prog="%%dockerfile", add_help=False)
    p.add_argument("-t", "--tag", action="append", default=[])
    p.add_argument("--context", help="the build context folder (default: none, an empty one)")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--target")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--network", default="default", choices=("default", "none", "host"))
    add_limit_flags(p)
    return p


class DockerfileRunner:
    """The logic behind ``%%dockerfile``: the cell is the Dockerfile, the build log streams
    into the notebook, the result (steps, cache hits, sizes) is returned to be displayed."""

    def __init__(self, out: Any = None) -> None:
        self.out = out

    def run(self, line: str, cell: str) -> Any:
        import tempfile

        from pycont.builder.build import build
        from pycont.builder.progress import Plain
        from pycont.cli import limit_options
        from pycont.cli.build import _build_args

        try:
            a = _dockerfile_parser().parse_args(shlex.split(line))
            args = _build_args(a.build_arg)
        except (PycontError, ValueError) as err:  # ValueError: shlex, an unclosed quote
            raise IPythonUsageError(f"%%dockerfile: {err}") from None
        except SystemExit:  # --help printed the flags: nothing to build
            return None
        out = self.out or sys.stdout
        with contextlib.ExitStack() as stack:
            context = a.context
            if context is None:  # docker build - < Dockerfile: no context at all
                context = stack.enter_context(tempfile.TemporaryDirectory(prefix="pycont-ctx-"))
            try:
                return build(
                    context,
                    a.tag,
                    text=cell,
                    build_args=args,
                    target=a.target,
                    no_cache=a.no_cache,
                    network=a.network,
                    progress=Plain(out),
                    **limit_options(a),
                )
            except PycontError as err:
                print(f"ERROR: {err}", file=out)
            except KeyboardInterrupt:
                print("interrupted: the build stopped; nothing was tagged", file=out)
        return None


@magics_class
class PycontMagics(Magics):
    @cell_magic
    def container(self, line: str, cell: str) -> None:
        """%%container [--rm] [--name N] [-e K=V] [--pid host] ... IMAGE

        Run the cell as a shell script in a container (pycont.run(IMAGE, ["sh", "-c", CELL]))."""
        ContainerRunner().run(line, cell)

    @cell_magic
    def vm(self, line: str, cell: str) -> None:
        """%%vm [--rm] [--name N] [-m MEM] [--cpus N] [-e K=V] [-d] [--timeout S] IMAGE

        Run the cell as a shell script in a new VM: the image booted under its own kernel
        (pycont.vm.run(IMAGE, ["sh", "-c", CELL], rm=..., memory=..., cpus=...))."""
        VMRunner().run(line, cell)

    @cell_magic
    def dockerfile(self, line: str, cell: str) -> Any:
        """%%dockerfile -t NAME[:TAG] [--context DIR] [--build-arg K=V] [--no-cache]
        [--target STAGE] [--network host] [-m MEM] [--cpus N]

        Build the cell as a Dockerfile (pycont.build(DIR, NAME, text=CELL, build_args=...,
        no_cache=...)): the log streams here, the result shows each step, its cache hit and
        its layer's size."""
        return DockerfileRunner().run(line, cell)

    @no_var_expand  # keep docker templates such as {{.State.Pid}} as they are
    @line_magic
    def pycont(self, line: str) -> None:
        """%pycont ARGS: the pycont CLI, with its output here (e.g. %pycont ps -a).

        Stands for ``pycont ARGS`` in a terminal; ``stats`` prints one reading (--no-stream).
        ``{NAME}`` is the value of the variable NAME (:func:`expand_names`)."""
        if self.shell is not None:
            line = expand_names(line, self.shell.user_ns)
        try:
            args = shlex.split(line)
        except ValueError as err:  # an unclosed quote
            raise IPythonUsageError(f"%pycont: {err}") from None
        if args[:1] == ["stats"] and "--no-stream" not in args:
            args.insert(1, "--no-stream")  # a redrawn terminal table cannot show in a cell
        proc = subprocess.Popen(
            [sys.executable, "-m", "pycont", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        try:
            stream_output(proc.stdout.fileno(), sys.stdout)
        except KeyboardInterrupt:
            proc.terminate()
        proc.wait()


_registered = False


def load(ipython: Any) -> None:
    """``%load_ext pycont``: the magics, and HTML displays of containers and probes."""
    from pycont import display

    global _registered
    ipython.register_magics(PycontMagics)
    display.register(ipython)
    if not _registered:  # %reload_ext must not register the handler twice
        atexit.register(_cleanup)
        _registered = True


def unload(ipython: Any) -> None:
    """``%unload_ext``/``%reload_ext``: the HTML displays go; the cells' containers stay
    (removed at kernel exit)."""
    from pycont import display

    display.unregister(ipython)
