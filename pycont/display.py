"""Rich HTML for the notebook: what a container is, at a glance."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycont.runtime.container import Container

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
    limits = c.limits().describe() if cfg.limits else []
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
