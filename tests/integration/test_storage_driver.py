"""The copy-based (vfs) driver: what runs where overlay cannot mount, labelled as such."""

from __future__ import annotations

import pytest

import pycont
from pycont.errors import UsageError
from tests.helpers import mountinfo_lines, requires

pytestmark = requires("root")


@pytest.fixture
def vfs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONT_STORAGE_DRIVER", "vfs")


def test_vfs_runs_from_a_copy_and_says_so(vfs: None) -> None:
    c = pycont.run("busybox", ["sh", "-c", "echo x > /etc/new; rm /bin/vi; echo done"], timeout=60)
    try:
        assert (c.exit_code, c.output) == (0, "done\n")
        assert c.inspect()["GraphDriver"]["Name"].startswith("vfs")
        # the copy is the container's own: the image's layer still has /bin/vi
        assert any(layer for layer in c.config.layers)
        assert ("D", "/bin/vi") in c.diff() and ("A", "/etc/new") in c.diff()
        with pytest.raises(UsageError, match="needs the overlay driver"):
            c.commit("ch-vfs:1")
    finally:
        cid = c.id
        c.remove()
    assert mountinfo_lines(cid) == []


def test_unknown_driver_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONT_STORAGE_DRIVER", "zfs")
    with pytest.raises(UsageError, match="overlay or vfs"):
        pycont.run("busybox", ["true"])
