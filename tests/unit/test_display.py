"""The notebook layer draws containers and probes: display.register tells IPython how.

The runtime itself defines no ``_repr_html_``; registering is what ``%load_ext pycont`` does.
"""

from __future__ import annotations

from types import SimpleNamespace

from IPython.core.formatters import HTMLFormatter

from pycont import display
from pycont.runtime.container import Container


def shell() -> tuple[SimpleNamespace, HTMLFormatter]:
    html = HTMLFormatter()
    return SimpleNamespace(display_formatter=SimpleNamespace(formatters={"text/html": html})), html


def test_a_container_shows_as_html_once_registered() -> None:
    ip, html = shell()
    gone = Container("ab" * 32)  # no such container: the drawing says so, it never raises
    assert html(gone) is None
    display.register(ip)
    out = html(gone)
    assert out is not None and "&lt;Container abababababab removed&gt;" in out
    display.unregister(ip)
    assert html(gone) is None


def test_the_probe_is_registered_by_name_too() -> None:
    ip, html = shell()
    display.register(ip)
    assert ("pycont.kernel.probe", "Probe") in html.deferred_printers


def test_the_runtime_has_no_html_of_its_own() -> None:
    assert not hasattr(Container, "_repr_html_")
