"""Image references and their resolution to layers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pycont import images
from pycont.errors import ImageNotFound, UsageError
from pycont.images import Reference, resolve


@pytest.fixture(autouse=True)
def empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYCONT_ROOT", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("busybox", ("busybox", "latest")),
        ("busybox:latest", ("busybox", "latest")),
        ("busybox:1.36", ("busybox", "1.36")),
        ("library/busybox", ("busybox", "latest")),
        ("docker.io/library/busybox:1.36", ("busybox", "1.36")),
    ],
)
def test_normalize(ref: str, expected: tuple[str, str]) -> None:
    parsed = Reference.parse(ref)
    assert (parsed.familiar_name, parsed.tag) == expected


@pytest.mark.parametrize(
    "ref",
    [
        "",
        " busybox",
        "busybox ",
        "busy box",
        "busybox\n",
        # docker: "invalid reference format" (and a path out of the image store here)
        "../../etc",
        "busybox/../../../tmp",
        # docker: "repository name must be lowercase"
        "BusyBox",
        "busybox:",
        ":latest",
    ],
)
def test_normalize_rejects_bad_references(ref: str) -> None:
    with pytest.raises(UsageError) as info:
        Reference.parse(ref)
    assert f"invalid reference format {json.dumps(ref)}" in str(info.value)  # "\n" escaped


def test_resolve_of_an_unknown_image(empty_store: Path) -> None:
    with pytest.raises(ImageNotFound) as info:
        resolve("nosuchimage")
    msg = str(info.value)
    assert "'nosuchimage" in msg and "busybox" in msg  # says what is built in
    assert info.value.exit_code == 125
    assert not os.path.exists(empty_store / "images" / "layers")  # nothing was made


def test_resolve_of_a_builtin_with_another_tag() -> None:
    with pytest.raises(ImageNotFound):
        resolve("busybox:0.1")


def test_busybox_is_built_on_first_use_without_root(empty_store: Path) -> None:
    try:
        img = resolve("busybox")
    except ImageNotFound as err:
        pytest.skip(str(err))  # no static busybox on this machine
    assert img.name == "busybox:latest"
    (rootfs,) = img.layers  # one layer, unpacked under its diff_id in the OCI store
    assert os.path.dirname(rootfs) == str(empty_store / "images" / "layers")
    assert os.readlink(os.path.join(rootfs, "bin", "sh")) == "/bin/busybox"
    assert os.access(os.path.join(rootfs, "bin", "busybox"), os.X_OK)
    assert img.cmd == ("sh",)
    assert any(e.startswith("PATH=") for e in img.env)
    assert resolve("busybox").layers == img.layers  # built once
    assert os.listdir(empty_store / "images" / "layers") == [os.path.basename(rootfs)]
    assert images.DEFAULT_PATH in img.env[0]
