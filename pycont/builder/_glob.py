"""Shell patterns in ``${VAR#pattern}``, ``${VAR%pattern}`` and ``${VAR/pattern/word}``,
matched in linear time.

A glob turned into a backtracking regex (``*`` -> ``.*``) takes exponential time on a pattern
such as ``*x*x*x*x*x*x*x*xy`` (42 s against a 60-character value: a hung build). Here the
pattern is run as an automaton over the value: len(value) x len(pattern) steps at most, as
BuildKit's Go regexp (RE2) guarantees. The matches are the ones the regex would find.
"""

from __future__ import annotations

from collections.abc import Sequence

STAR, ANY = 0, 1  # the tokens of ``*`` and ``?``; any other token is a literal character
Token = int | str


def _compact(toks: Sequence[Token]) -> list[Token]:
    # "**" matches what "*" matches: one star per run keeps the automaton small.
    return [t for i, t in enumerate(toks) if not (t == STAR and i and toks[i - 1] == STAR)]


def _closure(states: set[int], toks: Sequence[Token]) -> set[int]:
    # A star may match nothing: the position after it is reachable without reading.
    out, todo = set(states), list(states)
    while todo:
        j = todo.pop()
        if j < len(toks) and toks[j] == STAR and j + 1 not in out:
            out.add(j + 1)
            todo.append(j + 1)
    return out


def _step(toks: Sequence[Token], states: dict[int, int], ch: str) -> dict[int, int]:
    """The states after reading ``ch``; each keeps the earliest start that reaches it."""
    moved: dict[int, int] = {}
    for j, begin in sorted(states.items(), key=lambda item: item[1]):
        if j == len(toks):
            continue
        tok = toks[j]
        if tok == STAR and ch != "\n":  # as the regex's "." (and Go's): not a newline
            moved.setdefault(j, begin)
        elif (tok == ANY and ch != "\n") or tok == ch:
            moved.setdefault(j + 1, begin)
    out: dict[int, int] = {}
    for j, begin in sorted(moved.items(), key=lambda item: item[1]):
        for k in _closure({j}, toks):
            out.setdefault(k, begin)
    return out


def prefix_end(toks: Sequence[Token], value: str, longest: bool) -> int | None:
    """Where the shortest (or longest) match of the pattern at the start of ``value`` ends."""
    toks = _compact(toks)
    states = dict.fromkeys(_closure({0}, toks), 0)
    end = None
    for pos in range(len(value) + 1):
        if len(toks) in states:
            end = pos
            if not longest:
                return end
        if pos == len(value) or not states:
            break
        states = _step(toks, states, value[pos])
    return end


def search(toks: Sequence[Token], value: str, start: int) -> tuple[int, int] | None:
    """The leftmost match at or after ``start``, the longest there: (begin, end), or None."""
    toks = _compact(toks)
    first = _closure({0}, toks)
    states: dict[int, int] = {}
    best: tuple[int, int] | None = None
    for pos in range(start, len(value) + 1):
        if best is None:  # a match may still begin here
            for j in first:
                states.setdefault(j, pos)
        begin = states.get(len(toks))
        if begin is not None and (best is None or begin <= best[0]):
            best = (begin, pos)
        if best is not None:  # a thread begun after the best match cannot beat it
            states = {j: b for j, b in states.items() if b <= best[0]}
        if pos == len(value) or not states:
            break
        states = _step(toks, states, value[pos])
    return best


def replace(toks: Sequence[Token], value: str, word: str, every: bool) -> str:
    """``${VAR/pattern/word}`` (``every``: ``//``) for a pattern with a character to match:
    the leftmost match, the longest there, as the regex would take it."""
    out: list[str] = []
    i = 0
    while (found := search(toks, value, i)) is not None:
        begin, end = found
        out += [value[i:begin], word]
        i = end
        if not every:
            break
    out.append(value[i:])
    return "".join(out)
