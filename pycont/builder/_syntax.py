"""The instruction grammar: what each Dockerfile instruction accepts, as BuildKit parses it.

One logical line becomes an `Instruction`: the name, the ``--flags`` before the arguments, and
the arguments in the instruction's own form (JSON exec form, shell form, key=value pairs, ...).
Lines, directives, heredoc bodies and stages are `dockerfile.py`'s job.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field

from pycont.builder import _lex

INSTRUCTIONS: tuple[str, ...] = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)  # fmt: skip
# Accepted flags: "str" needs =value, "bool" may omit it, "list" may repeat (values joined by \n).
_FLAGS: dict[str, dict[str, str]] = {
    "ADD": {"chown": "str", "chmod": "str", "checksum": "str", "keep-git-dir": "bool",
            "link": "bool", "unpack": "bool", "exclude": "list"},
    "COPY": {"from": "str", "chown": "str", "chmod": "str", "link": "bool", "parents": "bool",
             "exclude": "list"},
    "FROM": {"platform": "str"},
    "RUN": {"mount": "list", "network": "str", "security": "str", "device": "list"},
    "HEALTHCHECK": {"interval": "str", "timeout": "str", "start-period": "str",
                    "start-interval": "str", "retries": "str"},
}  # fmt: skip
HEREDOC_CMDS = frozenset({"ADD", "COPY", "RUN"})
_WS = re.compile(r"[\t\v\f\r ]+")  # BuildKit's reWhitespace: not \n, which ends a line anyway
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
# re.ASCII: Go's \d (BuildKit's) is 0-9 only; Python's would also take "٨٠".
_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE | re.ASCII)
_DURATION = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)", re.ASCII)
_MAX_DURATION_NS = 2**63 - 1  # Go's time.Duration: ParseDuration refuses more ("invalid duration")
_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9,
            "m": 60 * 10**9, "h": 3600 * 10**9}  # fmt: skip


class Fail(Exception):
    """A problem found below parse(); the parser adds the path and line."""


@dataclass(frozen=True)
class Heredoc:
    name: str  # the delimiter word, e.g. "EOF"
    content: str  # the body with its line ends; leading tabs stripped for <<-
    expand: bool  # False when the delimiter was quoted: the body is taken literally


@dataclass(frozen=True)
class Instruction:
    cmd: str
    line: int
    original: str  # as written; continuation lines joined the way docker joins them
    flags: Mapping[str, str]
    args: tuple[str, ...]
    json: bool = False
    heredocs: tuple[Heredoc, ...] = ()
    pairs: tuple[tuple[str, str | None], ...] = ()
    inner: Instruction | None = None
    path: str = field(default="Dockerfile", repr=False, compare=False)

    def flag_values(self, name: str) -> tuple[str, ...]:
        """The values of a repeatable flag (``--mount``, ``--exclude``), in order."""
        value = self.flags.get(name)
        return () if value is None else tuple(value.split("\n"))


def instruction(line: str, lineno: int, path: str, esc: str, notes: list[str]) -> Instruction:
    """One logical line as an Instruction, checked as BuildKit checks it; raises Fail."""
    parts = _WS.split(line.strip(), maxsplit=1)
    word = parts[0]
    cmd = word.upper()
    rest, raw_flags = extract_flags(parts[1], esc) if len(parts) == 2 else ("", [])
    rest = rest.strip()
    if cmd not in INSTRUCTIONS:
        raise Fail(f"unknown instruction: {word} (accepted: {', '.join(INSTRUCTIONS)})")
    base = Instruction(cmd, lineno, line, {}, (), path=path)
    flags = _parse_flags(cmd, raw_flags)
    inst = dataclasses.replace(base, flags=flags)
    if cmd in ("RUN", "CMD", "ENTRYPOINT", "SHELL"):
        if not rest:
            raise Fail(f"{cmd} requires at least one argument")
        items = _json_array(rest)
        if cmd == "SHELL" and items is None:
            raise Fail('SHELL requires the arguments to be in JSON form: SHELL ["/bin/sh", "-c"]')
        if cmd == "SHELL" and not items:
            raise Fail("SHELL requires at least one argument")
        if cmd == "RUN":
            _check_run_flags(flags)
        if items is None:
            return dataclasses.replace(inst, args=(rest,))
        return dataclasses.replace(inst, args=tuple(items), json=True)
    if cmd in ("COPY", "ADD", "VOLUME"):
        items = _json_array(rest)
        args = tuple(items) if items is not None else tuple(_WS.split(rest)) if rest else ()
        inst = dataclasses.replace(inst, args=args, json=items is not None)
        if cmd == "VOLUME":
            if not args:
                raise Fail("VOLUME requires at least one argument")
            if any(not a.strip() for a in args):
                raise Fail("VOLUME specified can not be an empty string")
            return dataclasses.replace(inst, args=tuple(a.strip() for a in args))
        if len(args) < 2:
            raise Fail(f"{cmd} requires at least two arguments: {cmd} <src>... <dest>")
        if _lex.heredoc_word(args[-1]):
            raise Fail(f"{cmd} cannot accept a heredoc as a destination")
        source = flags.get("from", "")
        if source and _lex.process_word(source, {}, esc) != source:
            raise Fail(
                "variable expansion is not supported for --from, define a new stage with "
                "FROM using ARG from global scope as a workaround"
            )
        return inst
    if cmd in ("ENV", "LABEL"):
        kv_words, kv_pairs = _name_values(cmd, rest, esc, lineno, notes)
        return dataclasses.replace(inst, args=kv_words, pairs=kv_pairs)
    if cmd == "ARG":
        words = parse_words(rest, esc)
        if not words:
            raise Fail("ARG requires at least one argument: ARG name[=default] ...")
        pairs: list[tuple[str, str | None]] = []
        for w in words:
            key, eq, value = w.partition("=")
            if eq and not key:
                raise Fail("ARG names can not be blank")
            pairs.append((key, value if eq else None))
        return dataclasses.replace(inst, args=tuple(words), pairs=tuple(pairs))
    if cmd in ("FROM", "EXPOSE"):
        args = tuple(_WS.split(rest)) if rest else ()
        if cmd == "EXPOSE":
            if not args:
                raise Fail("EXPOSE requires at least one argument: EXPOSE <port>[/<proto>] ...")
            for port in args:
                if not set(port) & set("$'\"\\`"):
                    check_port(port)
        elif len(args) == 3 and args[1].lower() == "as":
            if not _STAGE_NAME.match(args[2].lower()):
                raise Fail(
                    f"invalid name for build stage: {args[2]!r}, name can't start with "
                    "a number or contain symbols (accepted: [a-z][a-z0-9-_.]*)"
                )
        elif len(args) != 1:
            raise Fail("FROM requires either one or three arguments: FROM <image> [AS <name>]")
        return dataclasses.replace(inst, args=args)
    if cmd == "HEALTHCHECK":
        return _healthcheck(inst, rest)
    if cmd == "ONBUILD":
        if not rest:
            raise Fail("ONBUILD requires at least one argument: ONBUILD <instruction>")
        trigger = rest.split(maxsplit=1)[0].upper()
        if trigger == "ONBUILD":
            raise Fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise Fail(f"{trigger} isn't allowed as an ONBUILD trigger")
        inner = instruction(rest, lineno, path, esc, notes)
        return dataclasses.replace(inst, args=(rest,), inner=inner)
    # MAINTAINER, STOPSIGNAL, USER, WORKDIR: the rest of the line is the one argument.
    if not rest:
        raise Fail(f"{cmd} requires exactly one argument")
    if cmd == "MAINTAINER":
        notes.append(
            f"line {lineno}: MAINTAINER is deprecated: "
            "use LABEL org.opencontainers.image.authors=..."
        )
    return dataclasses.replace(inst, args=(rest,))


def _parse_flags(cmd: str, raw: list[str]) -> dict[str, str]:
    accepted = _FLAGS.get(cmd, {})
    flags: dict[str, str] = {}
    for arg in raw:
        name, eq, value = arg.removeprefix("--").partition("=")
        kind = accepted.get(name)
        if kind is None:
            what = ", ".join(f"--{f}" for f in accepted) if accepted else f"none for {cmd}"
            raise Fail(f"unknown flag: --{name} for {cmd} (accepted: {what})")
        if name in flags and kind != "list":
            raise Fail(f"duplicate flag specified: --{name}")
        if kind == "bool":
            if eq and not value:
                raise Fail(f"missing a value on flag: --{name}")
            if value.lower() not in ("", "true", "false"):
                raise Fail(f"expecting boolean value for flag --{name}, not: {value}")
            value = value.lower() or "true"
        elif not eq:
            raise Fail(f"missing a value on flag: --{name} (use --{name}=VALUE)")
        flags[name] = flags[name] + "\n" + value if name in flags else value
    return flags


def _check_run_flags(flags: Mapping[str, str]) -> None:
    if flags.get("network", "default") not in ("default", "none", "host"):
        raise Fail(f"invalid network mode {flags['network']!r} (accepted: default, none, host)")
    if flags.get("security", "sandbox") not in ("sandbox", "insecure"):
        raise Fail(f"security {flags['security']!r} is not valid (accepted: sandbox, insecure)")


def _json_array(rest: str) -> list[str] | None:
    """The exec form: a JSON array of strings, or None for the shell form (docker's fallback)."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        # Go's encoding/json has no NaN/Infinity: such text is not JSON, so shell form.
        items = json.loads(rest, parse_constant=_no_constant)
    except ValueError:
        return None
    if not all(isinstance(i, str) for i in items):
        raise Fail("when using JSON array syntax, arrays must be comprised of strings only")
    return list(items)


def _no_constant(name: str) -> None:
    raise ValueError(name)


def _name_values(
    cmd: str, rest: str, esc: str, lineno: int, notes: list[str]
) -> tuple[tuple[str, ...], tuple[tuple[str, str | None], ...]]:
    words = parse_words(rest, esc)
    if not words:
        raise Fail(f"{cmd} requires at least one argument: {cmd} <key>=<value> ...")
    if "=" not in words[0]:
        # The legacy form `ENV key value`: the rest of the line is the value.
        parts = _WS.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise Fail(f"{cmd} must have two arguments: {cmd} <key>=<value> ...")
        notes.append(
            f'line {lineno}: "{cmd} key=value" should be used instead of the legacy '
            f'"{cmd} key value" form'
        )
        pairs: list[tuple[str, str | None]] = [(parts[0], parts[1])]
    else:
        pairs = []
        for w in words:
            if "=" not in w:
                raise Fail(f"Syntax error - can't find = in {w!r}. Must be of the form: name=value")
            key, _, value = w.partition("=")
            pairs.append((key, value))
    if any(not key for key, _ in pairs):
        raise Fail(f"{cmd} names can not be blank")
    return tuple(words), tuple(pairs)


def _healthcheck(inst: Instruction, rest: str) -> Instruction:
    typ, cmd_text = re.match(r"(\S*)\s*(.*)", rest, re.DOTALL).groups()  # type: ignore[union-attr]
    typ = typ.upper()
    if not typ:
        raise Fail("HEALTHCHECK requires at least one argument: NONE or [flags] CMD <command>")
    if typ == "NONE":
        if cmd_text:
            raise Fail("HEALTHCHECK NONE takes no arguments")
        if inst.flags:
            raise Fail("HEALTHCHECK NONE takes no flags (they go with HEALTHCHECK [flags] CMD)")
        return dataclasses.replace(inst, args=("NONE",))
    if typ != "CMD":
        raise Fail(f"Unknown type {typ!r} in HEALTHCHECK (accepted: CMD, NONE)")
    if not cmd_text:
        raise Fail("Missing command after HEALTHCHECK CMD")
    for name in ("interval", "timeout", "start-period", "start-interval"):
        value = inst.flags.get(name, "")
        if value and 0 != _duration(name, value) < 10**6:
            raise Fail(f"Interval --{name} cannot be less than 1ms")
    retries = inst.flags.get("retries", "")
    if retries and not re.fullmatch(r"[+-]?[0-9]{1,18}", retries):  # Go: an int64
        raise Fail(f"--retries must be a whole number (at most 18 digits), not {retries!r}")
    if retries and int(retries) < 0:
        raise Fail(f"--retries cannot be negative ({int(retries)})")
    items = _json_array(cmd_text)
    if items is None:
        return dataclasses.replace(inst, args=("CMD", cmd_text))
    if not items:
        raise Fail("Missing command after HEALTHCHECK CMD")
    return dataclasses.replace(inst, args=("CMD", *items), json=True)


def _duration(name: str, value: str) -> int:
    try:
        return parse_duration(value)
    except ValueError:
        raise Fail(
            f"HEALTHCHECK --{name}: invalid duration {value!r} "
            "(accepted: a number and a unit ns us ms s m h, e.g. 30s, 1m30s)"
        ) from None


def parse_duration(text: str) -> int:
    """A Go duration ("1m30s", "500ms", "0") in nanoseconds, as HEALTHCHECK's flags take it."""
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return 0
    pieces = _DURATION.findall(body)
    if not body or "".join(n + u for n, u in pieces) != body:
        raise ValueError(f"invalid duration {text!r}")
    total = sum(float(n) * _UNIT_NS[u] for n, u in pieces)
    if not total <= _MAX_DURATION_NS:  # also inf, from thousands of digits
        raise ValueError(f"invalid duration {text!r}: longer than 2562047h")
    return sign * round(total)


def check_port(port: str) -> None:
    match = _PORT.match(port)
    low = _port_number(match.group(1)) if match else -1
    high = _port_number(match.group(2) or match.group(1)) if match else -1
    if not match or not 0 <= low <= high <= 65535:
        raise Fail(f"invalid port {port!r} (accepted: <port>[-<port>][/tcp|/udp|/sctp], 0-65535)")


def _port_number(digits: str) -> int:
    # int() refuses thousands of digits (ValueError); past 5 significant ones it is out of range.
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= 5 else 65536


def check_signal(sig: str) -> None:
    name = sig.upper().removeprefix("SIG")
    # Not str.isdigit(): it takes "²", which int() refuses.
    if re.fullmatch(r"[0-9]{1,3}", sig) and 0 < int(sig) <= 64:
        return
    if re.fullmatch(r"RT(MIN|MAX)([+-][0-9]+)?", name) or hasattr(signal.Signals, "SIG" + name):
        return
    raise Fail(f"invalid STOPSIGNAL {sig!r} (accepted: a name like SIGTERM or TERM, or a number)")


def parse_words(rest: str, escape: str) -> list[str]:
    """Split ENV/LABEL/ARG text on whitespace outside quotes; quotes and escapes are kept."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    blank_ok = False  # "" is a word of its own
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    break
                word.append(ch)
                i += 1
                ch = rest[i]
            word.append(ch)
        elif ch.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok = [], False
        else:
            if ch in "'\"":
                quote, blank_ok = ch, True
            elif ch == escape:
                if i + 1 == n:
                    break  # an escape at the very end is dropped
                word.append(ch)
                i += 1
                ch = rest[i]
            word.append(ch)
        i += 1
    if blank_ok or word:
        words.append("".join(word))
    return words


def extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Take the leading ``--flag[=value]`` words off `line`: (the rest, the flags unquoted)."""
    flags: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i == n:
            return "", flags
        if not line.startswith("--", i):
            return line[i:], flags
        word: list[str] = []
        quote = ""
        blank_ok = False
        while i < n and (quote or not line[i].isspace()):
            ch = line[i]
            i += 1
            if quote and ch == quote:
                quote = ""
                continue
            if not quote and ch in "'\"":
                quote, blank_ok = ch, True
                continue
            if ch == escape:
                if i == n:
                    break
                ch = line[i]
                i += 1
            word.append(ch)
        text = "".join(word)
        if text == "--":  # `--` ends the flags
            return line[i:], flags
        if blank_ok or text:
            flags.append(text)
