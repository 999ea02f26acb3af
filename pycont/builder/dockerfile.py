"""The Dockerfile: parser directives, instructions, heredocs and build stages.

A Dockerfile is a list of instructions, one per logical line (a trailing escape character joins
the next line). ``FROM`` starts a build stage; the rest change that stage's filesystem (RUN,
COPY, ADD) or its config. This parser follows BuildKit's frontend: the same line joining,
comments, JSON (exec) forms, flags and error cases; `expand` does docker's own ``$VAR`` step.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from pycont.builder import _lex
from pycont.builder._syntax import (
    HEREDOC_CMDS,
    INSTRUCTIONS,
    Fail,
    Heredoc,
    Instruction,
    check_port,
    check_signal,
    instruction,
    parse_duration,
)
from pycont.errors import UsageError

__all__ = [
    "INSTRUCTIONS",
    "Dockerfile",
    "DockerfileError",
    "Heredoc",
    "Instruction",
    "Stage",
    "expand",
    "expand_heredoc",
    "parse",
    "parse_duration",
    "split_words",
    "substitute",
]

_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


class DockerfileError(UsageError):
    """The Dockerfile is wrong; the message reads ``Dockerfile:LINE: what and what is accepted``."""


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    base: str
    from_: Instruction
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True)
class Dockerfile:
    escape: str
    meta_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    notes: tuple[str, ...]


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile's text; raises DockerfileError naming the path and line."""
    parser = _Parser(text, path)
    try:
        insts = list(parser.instructions())
    except Fail as err:
        raise DockerfileError(f"{path}:{parser.start}: {err}") from None
    if not insts:
        raise DockerfileError(f"{path}:{max(parser.lineno, 1)}: file with no instructions")
    meta: list[Instruction] = []
    stages: list[Stage] = []
    names: set[str] = set()
    body: dict[int, list[Instruction]] = {}
    for inst in insts:
        if inst.cmd == "FROM":
            name = inst.args[2].lower() if len(inst.args) == 3 else None
            if name in names:
                raise DockerfileError(f"{path}:{inst.line}: duplicate stage name {name!r}")
            if name:
                names.add(name)
            body[len(stages)] = []
            stages.append(Stage(len(stages), name, inst.args[0], inst, ()))
        elif stages:
            body[len(stages) - 1].append(inst)
        elif inst.cmd == "ARG":
            meta.append(inst)
        else:
            raise DockerfileError(
                f"{path}:{inst.line}: no build stage in current context "
                f"({inst.cmd} before the first FROM; only ARG may come before it)"
            )
    stages = [dataclasses.replace(st, instructions=tuple(body[st.index])) for st in stages]
    if not stages:
        raise DockerfileError(f"{path}:{insts[-1].line}: dockerfile contains no stages to build")
    return Dockerfile(parser.escape, tuple(meta), tuple(stages), tuple(parser.notes))


class _Parser:
    """Turns lines into instructions the way BuildKit's parser.Parse does."""

    def __init__(self, text: str, path: str) -> None:
        text = text.removeprefix("\ufeff")
        parts = text.split("\n")
        self.lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
        self.path = path
        self.pos = 0
        self.lineno = 0
        self.start = 0
        self.escape = "\\"
        self.notes: list[str] = []
        self.directives_done = False
        self.seen: set[str] = set()
        self._set_escape("\\")

    def _set_escape(self, esc: str) -> None:
        if esc not in ("\\", "`"):
            raise Fail(f"invalid escape token {esc!r}: accepted are ` and \\")
        self.escape = esc
        e = re.escape(esc)
        self.continuation = re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")

    def _directive(self, line: str) -> None:
        # Directives are comments at the very top; anything else ends them for good.
        if self.directives_done:
            return
        match = _DIRECTIVE.match(line[1:].lstrip()) if line.startswith("#") else None
        key = match.group(1).lower() if match else ""
        if key not in ("escape", "syntax", "check") or match is None:
            self.directives_done = True
            return
        if key in self.seen:
            raise Fail(f"only one {key} parser directive can be used")
        self.seen.add(key)
        value = match.group(2)
        if key == "escape":
            self._set_escape(value)
        elif key == "syntax":
            self.notes.append(
                f"line {self.lineno}: # syntax={value} is ignored: pycont has one built-in frontend"
            )
        else:
            self.notes.append(
                f"line {self.lineno}: # check={value} is ignored: pycont runs no build checks"
            )

    def _next(self, strip: bool) -> tuple[str, str]:
        raw = self.lines[self.pos]
        self.pos += 1
        self.lineno += 1
        line = raw.rstrip("\r\n")
        if strip:
            self.start = self.lineno
            line = line.lstrip()
        self._directive(line)
        return raw, "" if _is_comment(line) else line

    def _trim(self, line: str) -> tuple[str, bool]:
        if self.continuation.search(line):
            return self.continuation.sub(r"\1", line), False
        return line, True

    def instructions(self) -> Iterator[Instruction]:
        while self.pos < len(self.lines):
            _, text = self._next(strip=True)
            text, end = self._trim(text)
            if end and not text:
                continue
            joined = [text]
            empty_continuation = False
            while not end and self.pos < len(self.lines):
                raw, text = self._next(strip=False)
                if _is_comment(raw):
                    continue  # comments inside a continued instruction are dropped
                if not text.strip():
                    empty_continuation = True
                    continue
                text, end = self._trim(text)
                joined.append(text)
            line = "".join(joined)
            if empty_continuation:
                self.notes.append(
                    f"line {self.start}: empty continuation line in {line.strip()!r}"
                    " (docker warns: it will become an error)"
                )
            inst = instruction(line, self.start, self.path, self.escape, self.notes)
            target = inst.inner if inst.inner is not None else inst
            if target.cmd in HEREDOC_CMDS and not target.json and "<<" in line:
                docs = tuple(self._heredoc(*doc) for doc in _lex.heredocs_in_line(line))
                if docs and inst.inner is not None:
                    inner = dataclasses.replace(inst.inner, heredocs=docs)
                    inst = dataclasses.replace(inst, heredocs=docs, inner=inner)
                elif docs:
                    inst = dataclasses.replace(inst, heredocs=docs)
            yield inst

    def _heredoc(self, name: str, chomp: bool, expand: bool) -> Heredoc:
        body: list[str] = []
        while self.pos < len(self.lines):
            raw = self.lines[self.pos]
            self.pos += 1
            self.lineno += 1
            candidate = raw.rstrip("\r\n")
            if (candidate.lstrip("\t") if chomp else candidate) == name:
                content = "".join(body)
                if chomp:
                    content = re.sub(r"(?m)^\t+", "", content)
                return Heredoc(name, content, expand)
            body.append(raw)
        raise Fail(f"unterminated heredoc: no line {name!r} ends the <<{name} body")


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def expand(inst: Instruction, env: Mapping[str, str], escape: str = "\\") -> Instruction:
    """Docker's substitution step for `inst` (only where docker does it), then unquoting.

    An ONBUILD is returned unchanged: expand its ``inner`` when the trigger runs. Heredoc bodies
    are left alone (the shell expands RUN's; see `expand_heredoc` for COPY's and ADD's).
    """
    try:
        return _expand(inst, env, escape)
    except (Fail, _lex.LexError) as err:
        raise DockerfileError(f"{inst.path}:{inst.line}: {err}") from None


def _expand(inst: Instruction, env: Mapping[str, str], esc: str) -> Instruction:
    def word(text: str) -> str:
        return _lex.process_word(text, env, esc)

    replace = dataclasses.replace
    cmd = inst.cmd
    if cmd in ("COPY", "ADD"):
        args = tuple(a if _lex.heredoc_word(a) else word(a) for a in inst.args)
        flags = {
            k: word(v) if k in ("chown", "chmod", "checksum") else v for k, v in inst.flags.items()
        }
        return replace(inst, args=args, flags=flags)
    if cmd in ("ENV", "LABEL", "ARG"):
        pairs = tuple((word(k), None if v is None else word(v)) for k, v in inst.pairs)
        return replace(inst, pairs=pairs)
    if cmd == "FROM":
        image = word(inst.args[0])
        if not image:
            raise Fail(f"base name ({inst.args[0]}) should not be blank")
        flags = {k: word(v) for k, v in inst.flags.items()}
        return replace(inst, args=(image,), flags=flags)
    if cmd == "EXPOSE":
        ports = tuple(p for a in inst.args for p in _lex.process_words(a, env, esc))
        for port in ports:
            check_port(port)
        return replace(inst, args=ports)
    if cmd == "VOLUME":
        paths = tuple(word(a) for a in inst.args)
        if any(not p.strip() for p in paths):
            raise Fail("VOLUME specified can not be an empty string")
        return replace(inst, args=paths)
    if cmd in ("USER", "WORKDIR", "STOPSIGNAL"):
        value = word(inst.args[0])
        if not value:
            raise Fail(f"{cmd} requires exactly one argument ({inst.args[0]} expanded to '')")
        if cmd == "STOPSIGNAL":
            check_signal(value)
        return replace(inst, args=(value,))
    if cmd == "RUN" and "mount" in inst.flags:
        mounts = [_expand_mount(m, word) for m in inst.flag_values("mount")]
        return replace(inst, flags={**inst.flags, "mount": "\n".join(mounts)})
    return inst


def _expand_mount(spec: str, word: Callable[[str], str]) -> str:
    # BuildKit expands each key=value field of --mount; fields without = are keywords (ro, rw).
    fields = []
    for item in spec.split(","):
        key, eq, value = item.partition("=")
        fields.append(key + eq + word(value) if eq else item)
    return ",".join(fields)


def expand_heredoc(content: str, env: Mapping[str, str]) -> str:
    """A COPY/ADD heredoc body with ``$VAR`` expanded (when its Heredoc.expand is true).

    BuildKit runs the lexer with quotes left alone but backslash escapes applied.
    """
    try:
        return _lex.process_word(content, env, "\\", skip_quotes=True)
    except _lex.LexError as err:
        raise UsageError(f"heredoc: {err}") from None


def substitute(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Replace the variables in `word`; quotes and escape characters are kept."""
    try:
        return _lex.process_word(word, env, escape, raw_quotes=True, raw_escapes=True)
    except _lex.LexError as err:
        raise UsageError(f"variable substitution: {err}") from None


def split_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Substitute, split on unquoted whitespace and remove the quotes, as docker's lexer."""
    try:
        return _lex.process_words(text, env, escape)
    except _lex.LexError as err:
        raise UsageError(f"variable substitution: {err}") from None
