"""In the lab VM, images of the host's store are there too: copied on first use, by digest."""

from __future__ import annotations

import pytest

from pycont.errors import ImageNotFound
from pycont.images import ENV_HOST_IMAGES, resolve
from pycont.images.store import Store


def test_an_image_only_the_host_has_is_copied_on_first_use(tmp_path, monkeypatch) -> None:
    host = Store(str(tmp_path / "host" / "images"))
    guest = Store(str(tmp_path / "guest" / "images"))
    made = resolve("busybox", host)
    host.tag("busybox", "mybox:1")
    with pytest.raises(ImageNotFound):
        resolve("mybox:1", guest)  # no host store named: the usual one-line error
    monkeypatch.setenv(ENV_HOST_IMAGES, host.root)
    got = resolve("mybox:1", guest)
    assert (got.id, got.digest) == (made.id, made.digest)  # the same image, by content
    assert guest.get("mybox:1").id == made.id  # now in the guest's own store
    with pytest.raises(ImageNotFound, match="unable to find image 'nothere:1'"):
        resolve("nothere:1", guest)
