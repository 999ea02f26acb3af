"""How a notebook draws the probe: a table of what this machine allows, one row per answer.

Presentation belongs to the notebook layer, not to the kernel seam that found the answers
(:mod:`pycont.kernel.probe`); the notebook layer registers :func:`probe_html` as the HTML
formatter of :class:`~pycont.kernel.probe.Probe`.
"""

from __future__ import annotations

import html

from pycont.kernel.probe import Probe

__all__ = ["probe_html"]


def probe_html(probe: Probe) -> str:
    """An HTML table: check, ✔ or ✘, and the reason; the mode and kernel as its caption."""
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{'✔' if a.ok else '✘'}</td>"
        f"<td style='text-align:left'>{html.escape(a.reason)}</td></tr>"
        for label, a in probe.answers()
    )
    caption = html.escape(f"mode {probe.mode_summary} (kernel {probe.kernel})")
    return (
        f"<table><caption>{caption}</caption>"
        "<thead><tr><th>check</th><th>answer</th><th>reason</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
