"""The Dockerfile's word lexer: variable substitution, quotes and word splitting.

Docker expands ``$VAR`` itself, before any shell runs, in the instructions that name files,
users, ports and values (COPY, ENV, WORKDIR, ...). It mimics ``sh``: ``$V``, ``${V}``,
``${V:-word}`` and friends, no expansion inside single quotes, then quote removal. This module
follows BuildKit's shell lexer rule by rule; `dockerfile.py` decides where it applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pycont.builder import _glob

__all__ = [
    "LexError",
    "heredoc_word",
    "heredocs_in_line",
    "process_word",
    "process_words",
]


class LexError(ValueError):
    """Bad substitution or unbalanced quote; the message is docker's wording."""


# `$@`, `$#`, `$$`, ...: a one-character name that is never set in a build.
_SPECIAL = frozenset("@*#?-$!0")


class _Words:
    """Splits the expanded text on unquoted whitespace (BuildKit's wordsStruct)."""

    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def char(self, ch: str) -> None:
        if not ch.isspace():
            self.raw_char(ch)
        elif self.in_word and self.buf:
            self.words.append(self.buf)
            self.buf = ""
            self.in_word = False

    def raw_char(self, ch: str) -> None:
        self.buf += ch
        self.in_word = True

    def string(self, text: str) -> None:
        for ch in text:
            self.char(ch)

    def raw_string(self, text: str) -> None:
        # Quoted text is one piece of a word, whitespace and all; "" alone makes no word.
        self.buf += text
        self.in_word = True

    def done(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf = ""
        return self.words


class _Lexer:
    def __init__(
        self,
        text: str,
        env: Mapping[str, str],
        escape: str,
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_quotes: bool = False,
        skip_unset: bool = False,
    ) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_quotes = skip_quotes
        self.skip_unset = skip_unset

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def next(self) -> str | None:
        ch = self.peek()
        if ch is not None:
            self.pos += 1
        return ch

    def run(self) -> tuple[str, list[str]]:
        try:
            return self.stop_on(None, self.raw_escapes)
        except LexError as err:
            raise LexError(f"failed to process {self.text!r}: {err}") from None

    def stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str | None) -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words()
        while (ch := self.peek()) is not None:
            if stop is not None and ch == stop:
                self.next()
                return "".join(out), words.done()
            if ch == "$":
                value = self.dollar()
                out.append(value)
                words.string(value)  # an expanded value is split on its whitespace
            elif ch == "<":
                value = self.maybe_heredoc()
                out.append(value)
                words.raw_string(value)
            elif ch in "'\"" and not self.skip_quotes:
                value = self.single_quote() if ch == "'" else self.double_quote()
                out.append(value)
                words.raw_string(value)
            else:
                self.next()
                if ch == self.escape:
                    if self.raw_escapes:
                        words.raw_char(ch)
                        out.append(ch)
                    escaped = self.next()
                    if escaped is None:  # a lone escape at the end is dropped
                        break
                    words.raw_char(escaped)
                    out.append(escaped)
                else:
                    words.char(ch)
                    out.append(ch)
        if stop is not None:
            raise LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.done()

    def single_quote(self) -> str:
        # sh(1): single quotes keep every character literal; nothing escapes a '.
        opening = self.next() or ""
        out = [opening] if self.raw_quotes else []
        while True:
            ch = self.next()
            if ch is None:
                raise LexError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        # sh(1): inside double quotes $ still expands; the escape only escapes " $ and itself.
        opening = self.next() or ""
        out = [opening] if self.raw_quotes else []
        while True:
            ch = self.peek()
            if ch is None:
                raise LexError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if following is None:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self.next() or ""
            out.append(ch)

    def maybe_heredoc(self) -> str:
        # `<<  EOF` stays one word, so that the heredoc detector sees the delimiter.
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        spaces = []
        while (ch := self.peek()) is not None and ch in " \t\r":
            spaces.append(ch)
            self.next()
        return "<<" + "".join(spaces)

    def name(self) -> str:
        first = self.peek()
        if first is None:
            return ""
        if first.isdigit():  # $1, $12: positional, read all the digits
            start = self.pos
            while (ch := self.peek()) is not None and ch.isdigit():
                self.next()
            return self.text[start : self.pos]
        if first in _SPECIAL:
            self.next()
            return first
        start = self.pos
        while (ch := self.peek()) is not None and (ch.isalnum() or ch == "_"):
            self.next()
        return self.text[start : self.pos]

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            if name not in self.env and self.skip_unset:
                return "$" + name
            return self.env.get(name, "")
        self.next()
        if self.peek() is None:
            raise LexError("syntax error: missing '}'")
        if self.peek() in ("{", "}", ":"):
            raise LexError("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        if op is None:
            raise LexError("syntax error: missing '}'")
        if op == "}":
            if name not in self.env and self.skip_unset:
                return "${" + name + "}"
            return self.env.get(name, "")
        if op == "/":
            return self.replace(name)
        colon = op == ":"
        if colon:
            op = self.next() or ""
        if op not in ("-", "+", "?", "#", "%") or (colon and op in "#%"):
            raise LexError(f"unsupported modifier ({':' if colon else ''}{op}) in substitution")
        word = self.operand("}", raw_escapes=op in "#%")
        is_set = name in self.env
        value = self.env.get(name, "")
        if self.skip_unset and not is_set:
            return "${" + name + (":" if colon else "") + op + word + "}"
        empty = not is_set or (colon and value == "")
        if op == "-":
            return word if empty else value
        if op == "+":
            return "" if empty else word
        if op == "?":
            if not is_set:
                raise LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if empty:
                raise LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(op)  # ## and %% take the longest match
        if greedy:
            word = word[1:]
        if op == "#":
            return _trim_prefix(word, value, greedy)
        return _trim_prefix(_reverse_pattern(word), value[::-1], greedy)[::-1]

    def operand(self, stop: str, raw_escapes: bool) -> str:
        try:
            word, _ = self.stop_on(stop, raw_escapes)
        except LexError:
            if self.peek() is None:
                raise LexError(f"syntax error: missing '{stop}'") from None
            raise
        return word

    def replace(self, name: str) -> str:
        every = self.peek() == "/"
        if every:
            self.next()
        try:
            pattern, _ = self.stop_on("/", True)
        except LexError:
            if self.peek() is None:
                raise LexError("syntax error: missing '/' in ${}") from None
            raise
        replacement = self.operand("}", raw_escapes=True)
        if name not in self.env and self.skip_unset:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        toks = _pattern_tokens(pattern)
        value = self.env.get(name, "")
        if all(t == _glob.STAR for t in toks):  # it matches "": the regex's rules, in linear time
            regex = re.compile(".*" if toks else "")
            return regex.sub(lambda _: replacement, value, count=0 if every else 1)
        return _glob.replace(toks, value, replacement, every)


def _pattern_tokens(pattern: str) -> list[_glob.Token]:
    """A shell glob (`*`, `?`, `\\` escapes) as tokens for :mod:`._glob`, as BuildKit reads it."""
    out: list[_glob.Token] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(_glob.STAR)
        elif ch == "?":
            out.append(_glob.ANY)
        elif ch == "\\":
            if i < len(pattern) and pattern[i] in "}/":
                continue  # \} and \/ only protected the delimiter
            nxt = pattern[i] if i < len(pattern) else ""
            i += 1
            if nxt not in ("*", "?", "\\"):
                raise LexError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'"
                )
            out.append(nxt)
        else:
            out.append(ch)
    return out


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    end = _glob.prefix_end(_pattern_tokens(pattern), value, longest=greedy)
    return value if end is None else value[end:]


def _reverse_pattern(pattern: str) -> str:
    # Reverse a glob for suffix matching, keeping each `\x` escape pair in order.
    pieces: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            pieces.append(pattern[i : i + 2])
            i += 2
        else:
            pieces.append(pattern[i])
            i += 1
    return "".join(reversed(pieces))


def process_word(
    text: str,
    env: Mapping[str, str],
    escape: str = "\\",
    *,
    raw_quotes: bool = False,
    raw_escapes: bool = False,
    skip_quotes: bool = False,
    skip_unset: bool = False,
) -> str:
    """Substitute and unquote `text` as one word (whitespace kept): ProcessWord."""
    lexer = _Lexer(
        text,
        env,
        escape,
        raw_quotes=raw_quotes,
        raw_escapes=raw_escapes,
        skip_quotes=skip_quotes,
        skip_unset=skip_unset,
    )
    return lexer.run()[0]


def process_words(
    text: str,
    env: Mapping[str, str],
    escape: str = "\\",
    *,
    raw_quotes: bool = False,
    raw_escapes: bool = False,
    skip_unset: bool = False,
) -> list[str]:
    """Substitute, split on unquoted whitespace and unquote: ProcessWords."""
    lexer = _Lexer(
        text, env, escape, raw_quotes=raw_quotes, raw_escapes=raw_escapes, skip_unset=skip_unset
    )
    return lexer.run()[1]


_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")


def heredoc_word(word: str) -> tuple[str, bool, bool] | None:
    """For ``<<EOF``, ``<<-EOF``, ``<<"EOF"``: (name, chomp, expand); None if not a heredoc."""
    match = _HEREDOC.match(word)
    if not match or not match.group(3):
        return None
    rest = match.group(3)
    words = process_words(rest, {}, "\\", skip_unset=True)
    if len(words) != 1:
        return None
    raw = process_words(rest, {}, "\\", raw_quotes=True, skip_unset=True)
    name = words[0]

    def quotes(text: str) -> int:
        return text.count("'") + text.count('"')

    # Any quoting in the delimiter means the body is taken literally (sh(1) here-documents).
    return name, match.group(2) == "-", quotes(name) == quotes(raw[0])


def heredocs_in_line(line: str) -> list[tuple[str, bool, bool]]:
    """The heredocs an instruction line opens, in order."""
    try:
        words = process_words(line, {}, "\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
    except LexError:
        return []
    found = []
    for word in words:
        doc = heredoc_word(word)
        if doc:
            found.append(doc)
    return found
