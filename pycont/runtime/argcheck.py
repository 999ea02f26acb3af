"""The types of pycont.run/create's arguments and of an image's config fields, checked before
anything is made: a wrong one is a one-line UsageError naming it, not a TypeError from deep
inside, and no NUL byte reaches the kernel (it would end an execve(2) argument early)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pycont.errors import UsageError

# The namespace options and the key NamespaceSet.from_modes knows each by.
NAMESPACE_OPTIONS = {
    "pid": "pid",
    "network": "net",
    "ipc": "ipc",
    "uts": "uts",
    "userns": "user",
    "cgroupns": "cgroup",
}
# The type each keyword of pycont.run/create takes (None always leaves the default), checked
# before anything else: a wrong one is a one-line UsageError naming it, not a TypeError from
# deep inside. The limits check their own (Limits.from_options).
TEXT_OPTIONS = (
    "name",
    "hostname",
    "workdir",
    *NAMESPACE_OPTIONS,
    "network_rate",
    "network_latency",
)
LIST_OPTIONS = (
    "env",
    "volumes",
    "cap_add",
    "cap_drop",
    "security_opt",
    "network_aliases",
    "publish",
    "dns",
    "add_host",
)
FLAG_OPTIONS = ("detach", "interactive", "rm", "narrate", "privileged", "read_only", "publish_all")


def check_text(what: str, value: object) -> str:
    """``value`` as a string that can reach the kernel: a NUL byte would end it early
    (execve(2)'s arguments and environment, every path, sethostname(2)), so none may hold one.
    ``what`` heads the message: ``"name="`` reads ``invalid name=123``."""
    if not isinstance(value, str):
        raise UsageError(f"invalid {what}{value!r}: expected a string, not {type(value).__name__}")
    if "\0" in value:
        raise UsageError(f"invalid {what}{value!r}: a NUL byte cannot be passed to a container")
    return value


def check_texts(what: str, values: object) -> tuple[str, ...]:
    """A list (or tuple) of strings, each checked by :func:`check_text`; a lone string is
    refused: iterated, it would be taken letter by letter."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise UsageError(
            f"invalid {what}={values!r}: expected a list of strings, not {type(values).__name__}"
        )
    return tuple(check_text(f"{what} entry ", v) for v in values)


def check_types(command: object, options: Mapping[str, Any]) -> None:
    """The command and the keywords of pycont.run/create have the types they must have."""
    if command is not None:
        check_texts("command", command)
    for opt, value in options.items():
        if value is None:
            continue
        if opt in TEXT_OPTIONS:
            check_text(f"{opt}=", value)
        elif opt in LIST_OPTIONS:
            check_texts(opt, value)
        elif opt in FLAG_OPTIONS and not isinstance(value, bool):
            raise UsageError(f"invalid {opt}={value!r}: expected True or False")
        elif opt == "user" and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise UsageError(f"invalid user={value!r}: expected a name or uid[:group], or a uid")
        elif opt == "user" and isinstance(value, str):
            check_text("user=", value)
        elif opt == "labels" and isinstance(value, Mapping):
            for key, text in value.items():  # any value, as str() of it (parse_labels)
                check_text("label ", str(key))
                check_text(f"label {key}=", str(text))
        elif opt == "labels":
            check_texts("labels", value)


def check_image_config(image: str, **fields: object) -> None:
    """An image's config fields that reach execve(2) (Env, Cmd, Entrypoint, WorkingDir,
    User) hold strings without a NUL byte; refused in one line before anything is made."""
    for key, value in fields.items():
        for item in value if isinstance(value, list | tuple) else (value,):
            if not isinstance(item, str) or "\0" in item:
                raise UsageError(
                    f"image {image}: invalid {key} {item!r} in its config: expected strings "
                    "without a NUL byte; rebuild or fix the image"
                )
