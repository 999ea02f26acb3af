"""The seccomp profile format: Docker's JSON profile and the OCI runtime spec's ``linux.seccomp``,
read from a file and checked, so a bad profile is refused when the container is created, with one
line naming the file, the rule and what is accepted. :mod:`.seccomp` builds the filter from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from pycont.errors import UsageError

# The actions and comparisons of Docker's (and the OCI runtime spec's) profile format. Values:
# SECCOMP_RET_* of <linux/seccomp.h>; the low 16 bits of ERRNO/TRACE carry the errno / message.
_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,  # kill the thread (SECCOMP_RET_KILL_THREAD)
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_OPS = {  # enum scmp_compare of <seccomp.h>
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
_FLAGS = {  # SECCOMP_FILTER_FLAG_* of seccomp(2)
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
_ARCH_NAMES = (
    "SCMP_ARCH_X86 SCMP_ARCH_X86_64 SCMP_ARCH_X32 SCMP_ARCH_ARM SCMP_ARCH_AARCH64 SCMP_ARCH_MIPS "
    "SCMP_ARCH_MIPS64 SCMP_ARCH_MIPS64N32 SCMP_ARCH_MIPSEL SCMP_ARCH_MIPSEL64 "
    "SCMP_ARCH_MIPSEL64N32 SCMP_ARCH_PPC SCMP_ARCH_PPC64 SCMP_ARCH_PPC64LE SCMP_ARCH_S390 "
    "SCMP_ARCH_S390X SCMP_ARCH_PARISC SCMP_ARCH_PARISC64 SCMP_ARCH_RISCV64 SCMP_ARCH_LOONGARCH64"
)
_ARCHES = _ARCH_NAMES.split()
_KERNEL_VERSION = re.compile(r"^(\d+)\.(\d+)")


def load_profile(path: str) -> dict[str, Any]:
    """A profile from a file: Docker's format, the OCI runtime spec's ``linux.seccomp`` object,
    or a whole OCI ``config.json`` (its ``linux.seccomp``). Checked here, so a bad file is
    refused when the container is created, with one line naming the file and the fault."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as err:
        raise UsageError(f"seccomp profile {path}: cannot read it: {err.strerror}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"seccomp profile {path}: not JSON ({err})") from err
    if isinstance(doc, dict) and isinstance(doc.get("linux"), dict):
        if not isinstance(doc["linux"].get("seccomp"), dict):
            raise UsageError(f"seccomp profile {path}: a config.json without linux.seccomp")
        doc = doc["linux"]["seccomp"]
    check(doc, path)
    return doc


def check(doc: Any, where: str) -> None:
    """Raise UsageError (one line: where, what is wrong, what is accepted) unless ``doc`` is a
    profile in Docker's or the OCI format."""

    def bad(what: str, accepted: Iterable[str] = ()) -> UsageError:
        tail = f"; accepted: {', '.join(accepted)}" if accepted else ""
        return UsageError(f"seccomp profile {where}: {what}{tail}")

    def number(value: Any, what: str, top: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise bad(f"{what} is {value!r}, not an integer from 0 to {top}")

    def strings(value: Any, what: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(f"{what} is {value!r}, not a list of strings")
        return value

    def action(value: Any, what: str) -> None:
        if value == "SCMP_ACT_NOTIFY":
            raise bad(f"{what} SCMP_ACT_NOTIFY needs a seccomp agent: pycont has none", _ACTIONS)
        if value not in _ACTIONS:
            raise bad(f"{what} {value!r} is not an action", _ACTIONS)

    if not isinstance(doc, dict):
        raise bad("not a JSON object with defaultAction and syscalls")
    calls = doc.get("syscalls") or []
    if "defaultAction" not in doc and calls:
        raise bad("missing defaultAction (an empty profile means unconfined)")
    if "defaultAction" in doc:
        action(doc["defaultAction"], "defaultAction")
    if "defaultErrnoRet" in doc:
        number(doc["defaultErrnoRet"], "defaultErrnoRet", 4095)
    if doc.get("architectures") and doc.get("archMap"):
        raise bad("both architectures and archMap: use one")
    for arch in strings(doc.get("architectures"), "architectures"):
        if arch not in _ARCHES:
            raise bad(f"unknown architecture {arch!r}", _ARCHES)
    for entry in doc.get("archMap") or []:
        if not isinstance(entry, dict) or entry.get("architecture") not in _ARCHES:
            raise bad(f"archMap entry {entry!r} has no known architecture", _ARCHES)
        for arch in strings(entry.get("subArchitectures"), "subArchitectures"):
            if arch not in _ARCHES:
                raise bad(f"unknown architecture {arch!r}", _ARCHES)
    for flag in strings(doc.get("flags"), "flags"):
        if flag not in _FLAGS:
            raise bad(f"unknown flag {flag!r}", _FLAGS)
    if doc.get("listenerPath"):
        raise bad("listenerPath (a seccomp agent) is not supported by pycont")
    if not isinstance(calls, list):
        raise bad("syscalls is not a list")
    for i, call in enumerate(calls):
        at = f"syscalls[{i}]"
        if not isinstance(call, dict):
            raise bad(f"{at} is not an object")
        names = strings(call.get("names"), f"{at}.names")
        if "name" in call and names:
            raise bad(f"{at} has both name and names: use one")
        if not names and not (isinstance(call.get("name"), str) and call["name"]):
            raise bad(f"{at} has no names")
        if "action" not in call:
            raise bad(f"{at} has no action", _ACTIONS)
        action(call["action"], f"{at}.action")
        if "errnoRet" in call:
            number(call["errnoRet"], f"{at}.errnoRet", 4095)
        args = call.get("args") or []
        if not isinstance(args, list) or len(args) > 6:
            raise bad(f"{at}.args is not a list of at most 6 comparisons")
        for j, arg in enumerate(args):
            if not isinstance(arg, dict) or "index" not in arg or "value" not in arg:
                raise bad(f"{at}.args[{j}] needs index, value and op")
            number(arg["index"], f"{at}.args[{j}].index", 5)
            number(arg["value"], f"{at}.args[{j}].value", 2**64 - 1)
            number(arg.get("valueTwo", 0), f"{at}.args[{j}].valueTwo", 2**64 - 1)
            if arg.get("op") not in _OPS:
                raise bad(f"{at}.args[{j}].op {arg.get('op')!r} is not a comparison", _OPS)
        for part in ("includes", "excludes"):
            cond = call.get(part) or {}
            if not isinstance(cond, dict):
                raise bad(f"{at}.{part} is not an object with caps, arches, minKernel")
            strings(cond.get("caps"), f"{at}.{part}.caps")
            strings(cond.get("arches"), f"{at}.{part}.arches")
            kernel = cond.get("minKernel")
            if kernel is not None and not _KERNEL_VERSION.match(str(kernel)):
                raise bad(f"{at}.{part}.minKernel {kernel!r} is not a version like 4.8")
