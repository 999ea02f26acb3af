"""Property-based tests (hypothesis) of the Dockerfile parser and its variable substitution.

Any text gives a Dockerfile or one DockerfileError line naming the line; substitution gives a
word or one UsageError line, in linear time (shell patterns run as an automaton: the backtracking
regex they were hung a build). Bounds and longer runs: tests/fuzz.py.
"""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from pycont.builder import dockerfile
from pycont.errors import UsageError
from tests.fuzz import FUZZ, one_line

# ---- the Dockerfile ------------------------------------------------------------------------

_WORDS = [
    *dockerfile.INSTRUCTIONS,
    "from",
    "run",
    "AS",
    "--mount=type=cache,target=/x",
    "--from=0",
    "--chown=1:1",
    "--interval=5s",
    "--platform=$P",
    "<<EOF",
    "<<-'EOF'",
    "EOF",
    "[",
    "]",
    '["a", "b"]',
    '"',
    "'",
    "${A:-x}",
    "${A:+y}",
    "${A#*}",
    "${A%%.*}",
    "${A/x/y}",
    "$A",
    "${",
    "}",
    "\\",
    "`",
    "=",
    "A=1",
    "80/tcp",
    "SIGKILL",
    "# escape=`",
    "# syntax=docker/dockerfile:1",
    "#",
    "NONE",
    "busybox",
    "CMD",
    "$",
]
_token = st.one_of(st.sampled_from(_WORDS), st.text(max_size=6))
_words = st.lists(_token, max_size=8).map(" ".join)
# Mostly instructions with fuzzed arguments (so the parse gets past line 1), some free lines
# (heredoc bodies, comments, continuations).
_line = st.one_of(
    st.builds(
        "{} {}".format,
        st.sampled_from([*dockerfile.INSTRUCTIONS, "run", "copy", "onbuild RUN"]),
        _words,
    ),
    _words,
)
_directives = st.lists(
    st.sampled_from(["# escape=`", "# escape=\\", "# syntax=x", "# check=skip=all", "#x=y"]),
    max_size=2,
    unique=True,
).map(lambda ds: "".join(d + "\n" for d in ds))
_dockerfiles = st.one_of(
    st.builds(
        lambda d, f, ls, end: d + f + "\n".join(ls) + end,
        _directives,
        st.sampled_from(["FROM busybox\n", "FROM busybox AS a\n", "ARG B=1\nFROM $B\n", ""]),
        st.lists(_line, max_size=8),
        st.sampled_from(["", "\n", "\\", "\\\n", " \\\n# c\n"]),
    ),
    st.text(max_size=200),
)


@FUZZ
@given(_dockerfiles, st.dictionaries(st.sampled_from(["A", "P", "B"]), st.text(max_size=5)))
# Found by hand after the fuzzers: int() of thousands of digits, a float duration that is inf,
# digits that are not ASCII (str.isdigit() takes "²", which int() refuses).
@example("FROM busybox\nEXPOSE 80-" + "9" * 5000, {})
@example("FROM busybox\nSTOPSIGNAL " + "9" * 5000, {})
@example("FROM busybox\nSTOPSIGNAL ²", {})
@example("FROM busybox\nHEALTHCHECK --retries=" + "9" * 5000 + " CMD true", {})
@example("FROM busybox\nHEALTHCHECK --interval=" + "9" * 400 + "h CMD true", {})
def test_the_dockerfile_parser_raises_only_dockerfile_errors(
    text: str, env: dict[str, str]
) -> None:
    try:
        parsed = dockerfile.parse(text)
    except dockerfile.DockerfileError as err:
        assert str(err).startswith("Dockerfile:")
        one_line(err)
        return
    for stage in parsed.stages:
        for inst in (stage.from_, *stage.instructions):
            try:
                dockerfile.expand(inst, env, parsed.escape)
            except dockerfile.DockerfileError as err:
                one_line(err)


@FUZZ
@given(
    st.lists(_token, max_size=8).map(" ".join),
    st.dictionaries(st.text(max_size=3), st.text(max_size=5)),
)
def test_word_substitution_raises_only_usage_errors(text: str, env: dict[str, str]) -> None:
    for escape in ("\\", "`"):
        for f in (dockerfile.split_words, dockerfile.substitute):
            try:
                f(text, env, escape)
            except UsageError as err:
                one_line(err)
        try:
            dockerfile.expand_heredoc(text, env)
        except UsageError as err:
            one_line(err)


def _glob_regex(pattern: str, greedy: bool) -> re.Pattern[str]:
    """The oracle: the pattern as the backtracking regex that _lex used (exponential time)."""
    from pycont.builder import _glob
    from pycont.builder._lex import _pattern_tokens

    star = ".*" if greedy else ".*?"
    return re.compile(
        "".join(
            star if t == _glob.STAR else "." if t == _glob.ANY else re.escape(str(t))
            for t in _pattern_tokens(pattern)
        )
    )


@FUZZ
@given(st.text("ab*?", min_size=1, max_size=7), st.text("abb\n", max_size=10))
def test_glob_patterns_match_as_the_regex_did(pattern: str, value: str) -> None:
    env = {"V": value}
    for op, greedy in (("#", False), ("##", True)):
        m = _glob_regex(pattern, greedy).match(value)
        want = value[m.end() :] if m else value
        assert dockerfile.substitute(f"${{V{op}{pattern}}}", env) == want
    for op, count in (("/", 1), ("//", 0)):
        want = _glob_regex(pattern, True).sub(lambda _: "R", value, count=count)
        assert dockerfile.substitute(f"${{V{op}{pattern}/R}}", env) == want


def test_a_pattern_with_many_stars_takes_linear_time() -> None:
    # As a regex, ${A#*x*x*x*x*x*x*x*xy} took 42 s on 60 characters, and doubled with each "*x".
    env = {"A": "x" * 2000}
    for op in ("#", "##", "%", "%%", "/", "//"):
        tail = "/z}" if "/" in op else "}"
        assert dockerfile.substitute("${A" + op + "*x" * 64 + "y" + tail, env) == "x" * 2000
