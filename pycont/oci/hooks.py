"""POSIX-platform hooks (config.md "Hooks"): programs the runtime runs at points of the lifecycle.

Each hook gets the container's state JSON on its stdin (runtime.md "State"). A failing
prestart, createRuntime, createContainer or startContainer hook fails the operation; a failing
poststart or poststop hook is only reported (runtime.md "Lifecycle", steps 7 and 12).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from pycont.errors import StartError
from pycont.oci.bundle import Hook

__all__ = ["run_hooks"]

_FATAL = frozenset({"prestart", "createRuntime", "createContainer", "startContainer"})


def run_hooks(kind: str, hooks: tuple[Hook, ...], state: Mapping[str, Any]) -> None:
    """Run ``hooks`` of lifecycle point ``kind`` in order; StartError if a fatal one fails."""
    data = json.dumps(state).encode()
    for hook in hooks:
        argv = list(hook.args) or [hook.path]
        env = dict(e.split("=", 1) for e in hook.env if "=" in e)
        why = ""
        try:
            done = subprocess.run(
                argv,
                executable=hook.path,
                input=data,
                env=env,
                capture_output=True,
                timeout=hook.timeout,
                check=False,
            )
            if done.returncode != 0:
                err = done.stderr.decode(errors="replace").strip().splitlines()
                why = f"exit status {done.returncode}" + (f": {err[-1]}" if err else "")
        except subprocess.TimeoutExpired:
            why = f"timed out after {hook.timeout} s"
        except OSError as err:
            why = err.strerror or str(err)
        if not why:
            continue
        msg = f"{kind} hook {hook.path}: {why}"
        if kind in _FATAL:
            raise StartError(msg, 1)
        print(f"pycont-oci: warning: {msg}", file=sys.stderr)
