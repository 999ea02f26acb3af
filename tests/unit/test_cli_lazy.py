"""The CLI builds only the parser of the verb it runs, and loads only that verb's module;
the full parser must agree with it."""

from __future__ import annotations

import argparse
import json
import os
import pkgutil
import subprocess
import sys

import pytest

from pycont import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _verbs(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def test_verb_names_are_every_verb_of_the_full_parser() -> None:
    assert _verbs(cli.build_parser()) == cli.VERB_NAMES


def test_a_known_verb_builds_only_itself_and_parses_the_same() -> None:
    args = ["run", "--rm", "-m", "64m", "--name", "x1", "busybox", "sh", "-c", "echo hi"]
    lazy = cli.build_parser(cli._verb_of(args))
    assert _verbs(lazy) == {"run"}
    assert vars(lazy.parse_args(args)) == vars(cli.build_parser().parse_args(args))


def test_options_or_unknown_verbs_build_everything() -> None:
    assert cli._verb_of(["--version"]) is None
    assert cli._verb_of(["nosuchverb"]) is None
    assert cli._verb_of([]) is None


def _loaded_by(args: list[str]) -> list[str]:
    """The pycont modules a fresh interpreter loads to build and parse ``pycont ARGS``."""
    code = (
        "import json, sys; from pycont import cli; "
        "cli.build_parser(cli._verb_of(sys.argv[1:])).parse_args(sys.argv[1:]); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pycont'))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded: list[str] = json.loads(proc.stdout)
    return loaded


BASE = {"pycont", "pycont.cli", "pycont.cli._common", "pycont.errors"}
LIGHT = {"pycont.format"}  # may load anywhere: it imports only the standard library


@pytest.mark.parametrize(
    ("args", "group"),
    [
        (["run", "--rm", "busybox", "true"], "containers"),
        (["ps", "-a"], "containers"),
        (["images"], "images"),
        (["stats", "--no-stream"], "resources"),
        (["volume", "ls"], "volumes"),
        (["system", "df"], "system"),
    ],
)
def test_a_verb_loads_only_its_own_group_and_no_runtime(args: list[str], group: str) -> None:
    # Parsing is all that happens before the verb runs: the runtime, the image store and the
    # other groups of verbs load only when (and if) the verb needs them.
    assert set(_loaded_by(args)) - LIGHT == {*BASE, f"pycont.cli.{group}"}


def test_every_group_module_is_named_in_the_verb_table() -> None:
    on_disk = {m.name for m in pkgutil.iter_modules(cli.__path__) if not m.name.startswith("_")}
    assert on_disk == set(cli.GROUPS)
