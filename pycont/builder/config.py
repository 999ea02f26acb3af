"""The instructions that change only the image's config: no container, no layer.

Each function takes the config's ``config`` object (the OCI image config's runtime part:
Env, Cmd, Entrypoint, WorkingDir, ...) and an expanded instruction, and returns the text that
``docker history`` shows as CREATED BY (Go's formatting of the value, as docker prints it).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pycont.builder.dockerfile import DockerfileError, Instruction

__all__ = ["DEFAULT_SHELL", "apply", "env_dict", "go_list", "set_env", "workdir"]

DEFAULT_SHELL = ("/bin/sh", "-c")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$")
_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def go_list(items: Sequence[str]) -> str:
    """Go's ``%q`` of a []string, as docker history prints it: ``["node" "index.js"]``."""
    return "[" + " ".join(json.dumps(i) for i in items) + "]"


def env_dict(cfg: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in cfg.get("Env") or ():
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def set_env(cfg: dict[str, Any], key: str, value: str) -> None:
    """Set one variable, keeping the others' order (docker replaces in place)."""
    env = list(cfg.get("Env") or [])
    for i, item in enumerate(env):
        if str(item).partition("=")[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    cfg["Env"] = env


def _duration(inst: Instruction, flag: str) -> int | None:
    text = inst.flags.get(flag)
    if text is None:
        return None
    m = _DURATION.match(text)
    if not m:
        raise DockerfileError(
            f"Dockerfile:{inst.line}: HEALTHCHECK --{flag}={text}: a duration such as 30s, "
            "1m30s is not accepted here: use one unit (ms, s, m, h)"
        )
    return int(float(m[1]) * _NS[m[2]])


def _command(inst: Instruction, shell: Sequence[str]) -> list[str]:
    """CMD/ENTRYPOINT: the exec form as is, the shell form run by the SHELL."""
    if inst.json:
        return list(inst.args)
    return [*shell, inst.args[0]] if inst.args else []


def apply(
    cfg: dict[str, Any],
    inst: Instruction,
    shell: Sequence[str],
    state: dict[str, Any],
) -> str:
    """Apply a config-only instruction to ``cfg``; returns its CREATED BY text. ``state``
    carries what docker tracks per stage: ``cmd_set`` (a CMD in this stage)."""
    cmd = inst.cmd
    if cmd == "ENV":
        for k, v in inst.pairs:
            set_env(cfg, k, v or "")
        return "ENV " + " ".join(f"{k}={v or ''}" for k, v in inst.pairs)
    if cmd in ("LABEL", "MAINTAINER"):
        labels = cfg.setdefault("Labels", {}) or {}
        cfg["Labels"] = labels
        if cmd == "MAINTAINER":
            labels["maintainer"] = " ".join(inst.args)
            return f"MAINTAINER {' '.join(inst.args)}"
        for k, v in inst.pairs:
            labels[k] = v or ""
        return "LABEL " + " ".join(f"{k}={v or ''}" for k, v in inst.pairs)
    if cmd == "EXPOSE":
        ports = cfg.setdefault("ExposedPorts", {}) or {}
        cfg["ExposedPorts"] = ports
        shown = []
        for p in inst.args:
            key = p if "/" in p else f"{p}/tcp"
            ports[key.lower()] = {}
            shown.append(f"{key.lower()}:{{}}")
        return f"EXPOSE map[{' '.join(shown)}]"
    if cmd == "VOLUME":
        vols = cfg.setdefault("Volumes", {}) or {}
        cfg["Volumes"] = vols
        for v in inst.args:
            if not v.strip():
                raise DockerfileError(f"Dockerfile:{inst.line}: VOLUME specified can not be empty")
            vols[v] = {}
        return f"VOLUME [{' '.join(inst.args)}]"
    if cmd == "USER":
        cfg["User"] = inst.args[0]
        return f"USER {inst.args[0]}"
    if cmd == "STOPSIGNAL":
        cfg["StopSignal"] = inst.args[0]
        return f"STOPSIGNAL {inst.args[0]}"
    if cmd == "SHELL":
        if not inst.args:
            raise DockerfileError(f"Dockerfile:{inst.line}: SHELL requires at least one argument")
        cfg["Shell"] = list(inst.args)
        return f"SHELL {go_list(inst.args)}"
    if cmd == "CMD":
        cfg["Cmd"] = _command(inst, shell)
        state["cmd_set"] = True
        return f"CMD {go_list(cfg['Cmd'])}"
    if cmd == "ENTRYPOINT":
        cfg["Entrypoint"] = _command(inst, shell) or None
        if not state.get("cmd_set"):
            cfg["Cmd"] = None  # docker: an ENTRYPOINT resets the CMD inherited from the base
        return f"ENTRYPOINT {go_list(cfg['Entrypoint'] or [])}"
    if cmd == "HEALTHCHECK":
        return _healthcheck(cfg, inst, shell)
    if cmd == "ONBUILD":
        if inst.inner is None:
            raise DockerfileError(f"Dockerfile:{inst.line}: ONBUILD needs an instruction")
        trigger = inst.original.split(None, 1)[1] if " " in inst.original else ""
        cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), trigger]
        return f"ONBUILD {trigger}"
    raise DockerfileError(f"Dockerfile:{inst.line}: {cmd} is not a config instruction")


def _healthcheck(cfg: dict[str, Any], inst: Instruction, shell: Sequence[str]) -> str:
    if inst.args and inst.args[0].upper() == "NONE":
        cfg["Healthcheck"] = {"Test": ["NONE"]}
        return "HEALTHCHECK NONE"
    rest = list(inst.args[1:])
    test = ["CMD", *rest] if inst.json else ["CMD-SHELL", " ".join(rest)]
    check: dict[str, Any] = {"Test": test}
    for flag, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        value = _duration(inst, flag)
        if value is not None:
            check[key] = value
    if "retries" in inst.flags:
        try:
            check["Retries"] = int(inst.flags["retries"])
        except ValueError:
            raise DockerfileError(
                f"Dockerfile:{inst.line}: HEALTHCHECK --retries={inst.flags['retries']}: "
                "a whole number is accepted"
            ) from None
    cfg["Healthcheck"] = check
    return f"HEALTHCHECK &{{{go_list(test)} ...}}"


def workdir(current: str, arg: str) -> str:
    """WORKDIR: relative to the previous one; the result is clean and absolute."""
    return posixpath.normpath(posixpath.join(current or "/", arg))
