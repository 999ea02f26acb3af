"""Variables in a compose file: ``${VAR}``, ``$VAR``, defaults, required values, ``$$``.

The Compose specification (12-interpolation.md) borrows the shell's parameter expansion: the
values of the YAML (never its keys) are expanded from the environment, which is the shell's
variables over those of a ``.env`` file beside compose.yaml. An unset variable without a
default becomes the empty string, with a warning, as docker compose does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from pycont.errors import UsageError

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ${NAME<op>word}: the operators bash(1) "Parameter Expansion" and the spec define.
OPERATORS = (":-", ":?", ":+", "-", "?", "+")


def read_env_file(path: str) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file; ``#`` comments, ``export``, and quotes allowed."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return out
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq or not NAME.fullmatch(key):
            raise UsageError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()  # an inline comment after an unquoted value
        out[key] = value
    return out


class Interpolator:
    """Expands one string at a time; remembers the unset variables it defaulted to ''."""

    def __init__(self, env: Mapping[str, str], file: str) -> None:
        self.env = env
        self.file = file
        self.warnings: list[str] = []

    def expand(self, text: str, where: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(text):
            ch = text[i]
            if ch != "$" or i + 1 == len(text):
                out.append(ch)
                i += 1
                continue
            nxt = text[i + 1]
            if nxt == "$":  # $$: a literal dollar, left for the container's shell
                out.append("$")
                i += 2
            elif nxt == "{":
                end = _closing_brace(text, i + 2)
                if end < 0:
                    raise UsageError(
                        f"{self.file}: {where}: invalid interpolation format in {text!r}: "
                        "missing '}' (escape a literal $ as $$)"
                    )
                out.append(self._braced(text[i + 2 : end], text, where))
                i = end + 1
            else:
                m = NAME.match(text, i + 1)
                if m is None:  # the spec: anything else after $ is kept as it is
                    out.append(ch)
                    i += 1
                    continue
                out.append(self._lookup(m.group(), where))
                i = m.end()
        return "".join(out)

    def _lookup(self, name: str, where: str) -> str:
        if name in self.env:
            return self.env[name]
        warning = f'{where}: the "{name}" variable is not set. Defaulting to a blank string.'
        if warning not in self.warnings:
            self.warnings.append(warning)
        return ""

    def _braced(self, body: str, text: str, where: str) -> str:
        m = NAME.match(body)
        if m is None:
            raise UsageError(
                f"{self.file}: {where}: invalid interpolation format in {text!r}: "
                "${...} needs a variable name (escape a literal $ as $$)"
            )
        name, rest = m.group(), body[m.end() :]
        if not rest:
            return self._lookup(name, where)
        op = next((o for o in OPERATORS if rest.startswith(o)), None)
        if op is None:
            raise UsageError(
                f"{self.file}: {where}: invalid interpolation format in {text!r}: "
                f"accepted are ${{{name}}}, ${{{name}:-default}}, ${{{name}-default}}, "
                f"${{{name}:?error}}, ${{{name}?error}}, ${{{name}:+alt}}, ${{{name}+alt}}"
            )
        word = rest[len(op) :]
        value = self.env.get(name)
        # With ':' an empty value counts as unset (bash(1), "Parameter Expansion").
        missing = value is None or (op.startswith(":") and value == "")
        kind = op[-1]
        if kind == "-":
            return self.expand(word, where) if missing else str(value)
        if kind == "+":
            return "" if missing else self.expand(word, where)
        if missing:  # "?": a required variable
            why = self.expand(word, where) or ("is not set" if value is None else "is empty")
            raise UsageError(f"{self.file}: {where}: required variable {name} is missing: {why}")
        return str(value)

    def walk(self, value: Any, where: str) -> Any:
        """The YAML tree with every string value expanded (keys are left as they are)."""
        if isinstance(value, str):
            return self.expand(value, where)
        if isinstance(value, dict):
            return {k: self.walk(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value


def _closing_brace(text: str, start: int) -> int:
    """Index of the '}' closing a '${' whose body starts at ``start`` (bodies may nest)."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def environment(env_file: str) -> dict[str, str]:
    """The variables interpolation sees: the shell's over the ``.env`` file's."""
    merged = read_env_file(env_file)
    merged.update(os.environ)
    return merged
