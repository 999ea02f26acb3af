"""An image's JSON documents are read within limits, and every config field has its type.

Documents a stranger wrote (an archive, a registry) are refused with one line when they are too
big or too deep (``json.loads`` itself recurses: 100,000 levels give a RecursionError) or when a
field the runtime uses has the wrong type: a ``Cmd`` that is a string would run as its first
letter, an ``Env`` with a NUL would make every ``run`` fail.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from typing import Any

import pytest

from pycont.errors import ArchiveError, CorruptBlob, UsageError
from pycont.images import archive
from pycont.images import jsonlimits as jl
from pycont.images.blobs import BlobStore
from pycont.images.report import ImageRecord
from pycont.images.store import Store
from tests.unit.test_archive import layer_tar

DIGEST = "sha256:" + "ab" * 32


def config(**fields: Any) -> dict[str, Any]:
    return {"config": fields, "rootfs": {"type": "layers", "diff_ids": [DIGEST]}}


def test_deep_documents_are_refused_without_a_traceback() -> None:
    for n in (65, 2_000, 100_000):
        with pytest.raises(jl.JSONRefused, match="nested deeper than the limit of 64"):
            jl.loads("[" * n + "]" * n)
        with pytest.raises(jl.JSONRefused, match="deeper"):
            jl.loads('{"a":' * n + "1" + "}" * n)
    assert jl.depth(jl.loads("[" * 64 + "]" * 64)) == 64  # the limit itself is accepted


def test_size_limit() -> None:
    big = b'{"a":"' + b"x" * jl.MAX_DOCUMENT + b'"}'
    with pytest.raises(jl.JSONRefused, match="over the limit of 4194304 bytes"):
        jl.loads(big)
    assert jl.loads(big, max_size=None)["a"].startswith("x")


def test_depth_counts_without_recursion() -> None:
    doc: Any = 1
    for _ in range(50_000):
        doc = [doc]
    assert jl.depth(doc) == jl.MAX_DEPTH + 1  # stops counting once over the limit
    assert jl.depth({"a": [{"b": []}]}) == 4
    assert jl.depth("x") == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"Cmd": "sh"}, "config Cmd must be a list of strings, got a string"),
        ({"Entrypoint": {"a": 1}}, "config Entrypoint must be a list of strings, got an object"),
        ({"Cmd": ["sh", 1]}, r"config Cmd\[1\] must be a string, got a number"),
        ({"Cmd": ["s\0h"]}, r"config Cmd\[0\] must not contain a NUL byte"),
        ({"Env": ["A=1", "B=\0"]}, r"config Env\[1\] must not contain a NUL byte"),
        ({"Env": ["NOEQUALS"]}, r"config Env\[0\] must be KEY=VALUE"),
        ({"Env": "A=1"}, "config Env must be a list of strings, got a string"),
        ({"Labels": {"a": 1}}, r"config Labels\['a'\] must be a string, got a number"),
        ({"Labels": ["a"]}, "config Labels must be an object, got a list"),
        ({"WorkingDir": 5}, "config WorkingDir must be a string, got a number"),
        ({"User": ["root"]}, "config User must be a string, got a list"),
        ({"ExposedPorts": ["80/tcp"]}, "config ExposedPorts must be an object, got a list"),
        ({"Volumes": "/data"}, "config Volumes must be an object, got a string"),
        ({"Shell": "bash"}, "config Shell must be a list of strings, got a string"),
        ({"OnBuild": 5}, "config OnBuild must be a list of strings, got a number"),
        ({"Healthcheck": {"Test": "true"}}, "config Healthcheck Test must be a list of strings"),
    ],
)
def test_config_field_types(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(jl.JSONRefused, match=message):
        jl.check_config(config(**fields))


def test_good_configs_pass() -> None:
    jl.check_config(
        config(
            Cmd=None,
            Entrypoint=["/bin/sh", "-c"],
            Env=["PATH=/bin", "EMPTY="],
            Labels={"a": "b"},
            ExposedPorts={"80/tcp": {}},
            Volumes={"/data": {}},
            WorkingDir="/",
            User="1000:1000",
        )
    )
    jl.check_config({"rootfs": {"diff_ids": []}})  # no "config" at all: an empty image


def test_config_and_manifest_shape() -> None:
    with pytest.raises(jl.JSONRefused, match="an image config must be an object, got a list"):
        jl.check_config([])
    with pytest.raises(jl.JSONRefused, match="rootfs must be an object, got null"):
        jl.check_config({"config": {}})
    with pytest.raises(jl.JSONRefused, match=r"rootfs diff_ids\[0\] must be a sha256"):
        jl.check_config({"rootfs": {"diff_ids": ["md5:x"]}})
    good = {"config": {"digest": DIGEST, "size": 2}, "layers": [{"digest": DIGEST, "size": 0}]}
    jl.check_manifest(good)
    with pytest.raises(jl.JSONRefused, match="manifest layers must be a list, got an object"):
        jl.check_manifest({**good, "layers": {}})
    with pytest.raises(jl.JSONRefused, match=r"manifest layers\[0\] size must be a number"):
        jl.check_manifest({**good, "layers": [{"digest": DIGEST, "size": "1"}]})
    with pytest.raises(jl.JSONRefused, match="manifest config digest must be a sha256"):
        jl.check_manifest({**good, "config": {"digest": "sha256:../../x", "size": 1}})


def test_a_stored_deep_blob_is_a_corrupt_blob(tmp_path: Any) -> None:
    blobs = BlobStore(str(tmp_path))
    digest = blobs.put(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(CorruptBlob, match=f"blob {digest} is not valid JSON: nested deeper"):
        blobs.read_json(digest)


def test_a_record_refuses_a_string_cmd_already_in_a_store() -> None:
    """An image stored before the checks existed: ``run`` says why, in one line."""
    rec = ImageRecord(
        reference="bad:1",
        id=DIGEST,
        digest=DIGEST,
        descriptor={},
        manifest={"layers": []},
        config=config(Cmd="sh", Env=["A=1"]),
        diff_ids=(),
        layers=(),
    )
    assert rec.env == ("A=1",)
    with pytest.raises(UsageError, match="^image bad:1: config Cmd must be a list of strings"):
        _ = rec.cmd


def test_index_shape() -> None:
    desc = {"digest": DIGEST, "size": 10, "platform": {"os": "linux", "architecture": "amd64"}}
    jl.check_index({"manifests": [desc]})
    with pytest.raises(jl.JSONRefused, match=r"index manifests\[0\] platform must be an object"):
        jl.check_index({"manifests": [{**desc, "platform": "linux"}]})
    with pytest.raises(jl.JSONRefused, match=r"index manifests\[0\] annotations must be an obj"):
        jl.check_index({"manifests": [{**desc, "annotations": ["a"]}]})
    with pytest.raises(jl.JSONRefused, match="index manifests must be a list, got null"):
        jl.check_index({})


# -- at load: refused before anything enters the store ---------------------------------------
def docker_archive(config_doc: Any, manifest: Any = None) -> bytes:
    """A docker-archive by hand: one layer, the config as given (named config.json, so its
    name says nothing of its digest)."""
    layer = layer_tar({"etc/hello": b"hi\n"})
    cfg = config_doc if isinstance(config_doc, bytes) else json.dumps(config_doc).encode()
    if manifest is None:
        manifest = [{"Config": "config.json", "RepoTags": ["bad:1"], "Layers": ["layer.tar"]}]
    files = {
        "manifest.json": manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode(),
        "config.json": cfg,
        "layer.tar": layer,
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def layer_config(**fields: Any) -> dict[str, Any]:
    diff_id = "sha256:" + hashlib.sha256(layer_tar({"etc/hello": b"hi\n"})).hexdigest()
    return {"config": fields, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}


@pytest.mark.parametrize(
    ("config_doc", "message"),
    [
        (layer_config(Cmd="sh"), "config Cmd must be a list of strings, got a string"),
        (layer_config(Env=["A=\0"]), r"config Env\[0\] must not contain a NUL byte"),
        (layer_config(Labels={"a": ["b"]}), r"config Labels\['a'\] must be a string, got a list"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "not valid JSON: nested deeper than"),
    ],
)
def test_load_refuses_a_bad_config(tmp_path: Any, config_doc: Any, message: str) -> None:
    store = Store(str(tmp_path / "images"))
    with pytest.raises(ArchiveError, match=f"image config 'config.json'.*{message}") as err:
        archive.load(io.BytesIO(docker_archive(config_doc)), store=store)
    assert "\n" not in str(err.value)
    assert store.images() == []
    assert os.listdir(store.blobs.dir) == []  # nothing entered the store


def test_load_refuses_a_deep_manifest(tmp_path: Any) -> None:
    store = Store(str(tmp_path / "images"))
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ArchiveError, match="manifest.json' is not valid JSON: nested deeper"):
        archive.load(io.BytesIO(docker_archive(layer_config(), deep)), store=store)
    good = archive.load(io.BytesIO(docker_archive(layer_config(Cmd=["sh"]))), store=store)
    assert good == ["bad:1"]
    assert store.get("bad:1").cmd == ("sh",)


def test_the_store_refuses_to_write_a_bad_config(tmp_path: Any) -> None:
    """The last gate (a base image stored by an older pycont, then built on): add_image."""
    store = Store(str(tmp_path / "images"))
    raw = layer_tar({"etc/hello": b"hi\n"})
    digest = store.put_blob(raw)
    desc = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": digest,
        "size": len(raw),
    }
    bad = layer_config(Cmd="sh")
    with pytest.raises(UsageError, match="^image .*bad:1: config Cmd must be a list of strings"):
        store.add_image("bad:1", bad, [desc])
    assert store.images() == []
    assert store.add_image("good:1", layer_config(Cmd=["sh"]), [desc]).cmd == ("sh",)


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ([{"created_by": 5}], r"history\[0\] created_by must be a string, got a number"),
        ([{"created": ["x"]}], r"history\[0\] created must be a string, got a list"),
        ([{"empty_layer": "no"}], r"history\[0\] empty_layer must be true or false"),
        ([{}, {}], "history has 2 rows with a layer for 1 layers in rootfs"),
    ],
)
def test_history_rows_are_typed_and_no_more_than_the_layers(
    history: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(jl.JSONRefused, match=message):
        jl.check_config({**config(), "history": history})
    rows = [{"created_by": "CMD", "empty_layer": True}, {"created_by": "ADD"}]
    jl.check_config({**config(), "history": rows})  # one layer, one row with a layer
