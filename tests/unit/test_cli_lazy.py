"""The CLI builds only the parser of the verb it runs; the full parser must agree with it."""

from __future__ import annotations

import argparse

from pycont import cli


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
