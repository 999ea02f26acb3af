"""Rich HTML for the notebook: what a container is, at a glance.

The runtime draws nothing: the notebook layer (``%load_ext pycont``) calls :func:`register`,
which tells IPython's HTML formatter how to show a Container and a probe's answers.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pycont.runtime.container import Container

__all__ = ["container_html", "register", "unregister"]

# Registered by dotted name: IPython matches the class when it first has to show one, so
# loading the extension imports neither the runtime nor the probe.
_FORMATTERS = {
    "pycont.runtime._container.Container": ("pycont.display", "container_html"),
    "pycont.kernel.probe.Probe": ("pycont.display_probe", "probe_html"),
}


def register(ip: Any) -> None:
    """Show containers and probes as HTML tables in this IPython shell."""
    import importlib

    formatter = ip.display_formatter.formatters["text/html"]
    for cls, (module, func) in _FORMATTERS.items():
        formatter.for_type(cls, getattr(importlib.import_module(module), func))


def unregister(ip: Any) -> None:
    """Undo :func:`register` (``%unload_ext pycont``)."""
    formatter = ip.display_formatter.formatters["text/html"]
    for cls in _FORMATTERS:
        try:
            formatter.pop(cls)
        except KeyError:
            continue


_STATUS_COLOURS = {
    "running": "#2e7d32",
    "exited": "#616161",
    "paused": "#ef6c00",
    "created": "#1565c0",
}


def _row(key: str, value: object) -> str:
    cell = html.escape(str(value))
    return f"<tr><th style='text-align:left'>{html.escape(key)}</th><td>{cell}</td></tr>"


def container_html(c: Container) -> str:
    try:
        cfg, rec = c.config, c.state()
    except Exception as err:  # noqa: BLE001 - a display must never raise
        return f"<code>{html.escape(repr(c))}</code> ({html.escape(str(err))})"
    colour = _STATUS_COLOURS.get(rec.status, "#000")
    status = rec.status if rec.exit_code is None else f"{rec.status} ({rec.exit_code})"
    shared = [ns for ns, mode in cfg.namespaces.items() if mode == "host"]
    rows = [
        _row("name", cfg.name),
        _row("id", c.short_id),
        _row("image", cfg.image),
        _row("command", " ".join(cfg.args)),
        f"<tr><th style='text-align:left'>status</th><td style='color:{colour}'>"
        f"<b>{html.escape(status)}</b></td></tr>",
    ]
    if rec.status == "running":
        rows.append(_row("host pid (PID 1 inside)", rec.pid))
    rows.append(_row("hostname", cfg.hostname))
    limits = cfg.limits.describe()
    rows.append(_row("limits", ", ".join(limits) or "none"))
    if rec.status == "running" and cfg.cgroup:
        try:
            s = c.stats()
            mem = f"{s.memory_current or 0:,} bytes" + (
                f" of {s.memory_limit:,}" if s.memory_limit else ""
            )
            rows.append(_row("memory", mem))
            rows.append(_row("processes", s.pids_current))
        except Exception:  # noqa: BLE001 - a display must never raise
            pass
    elif not cfg.cgroup:
        rows.append(_row("cgroup", f"none: {cfg.cgroup_note}"))
    rows.append(_row("namespaces shared with host", ", ".join(shared) or "none"))
    rows.append(_row("mode", "rootless (user namespace)" if cfg.rootless else "root"))
    return "<table class='pycont-container'>" + "".join(rows) + "</table>"
