"""The hostile-archive corpus (tests/hostile): every case refused with one line or loaded
contained, nothing written outside the store, the store whole after each.

The store lives in a temporary folder next to a canary folder that absolute names and links
aim at; after every case the canary and the folder's other entries must be as they were, the
store check must pass and the images must list. Each case is loaded through the API (the CLI
prints a PycontError as one line and anything else as a traceback, so "a PycontError with a
one-line message" is what "no traceback" means); one refused and one contained case of each
class go through ``pycont load`` itself, checked for a one-line stderr; ``pycont images`` and
``pycont system check`` run at the end. Layers are limited to 16 MiB here
(``PYCONT_MAX_LAYER_SIZE``), so a bomb is refused long before it fills anything.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pycont.errors import PycontError
from pycont.images import archive, fsck
from pycont.images.limits import MAX_LAYER_SIZE_ENV
from pycont.images.store import Store
from tests.helpers import cli, register_root, remove_root, requires
from tests.hostile.corpus import LIMIT, Case, build
from tests.hostile.tarbits import f, gz, sha, tar_of
from tests.hostile.wrap import oci_archive

# Verified as root: device nodes are made, owners kept (rootless, both are skipped instead).
pytestmark = requires("root")

# The canary's path is in the cases (absolute names aim at it), so it is fixed at collection.
BASE = os.path.join(tempfile.gettempdir(), f"pc-hostile-{os.getpid()}")
CANARY = os.path.join(BASE, "canary")
CASES = build(CANARY)
BY_ID = {c.id: c for c in CASES}


def _via_cli() -> list[str]:
    """One refused and one contained case of each class: through ``pycont load``."""
    seen: set[tuple[str, str]] = set()
    out = []
    for c in CASES:
        if (c.cls, c.expect) not in seen and not c.id.startswith("oci-"):
            seen.add((c.cls, c.expect))
            out.append(c.id)
    return out


@dataclass
class Arena:
    base: str
    root: str
    store: Store

    def outside(self) -> dict[str, tuple[int, int, int, bytes]]:
        """Everything in the temporary folder but the store: mode, size, mtime, content."""
        out = {}
        for top, dirs, files in os.walk(self.base):
            if top == self.base:
                dirs[:] = [d for d in dirs if d != "root"]
            for name in dirs + files:
                path = os.path.join(top, name)
                st = os.lstat(path)
                data = b""
                if os.path.isfile(path) and not os.path.islink(path) and name != "case.tar":
                    with open(path, "rb") as f:
                        data = f.read()
                out[os.path.relpath(path, self.base)] = (
                    st.st_mode,
                    st.st_size,
                    st.st_mtime_ns,
                    data,
                )
        return out


@pytest.fixture(scope="module")
def arena() -> Iterator[Arena]:
    os.makedirs(os.path.join(CANARY, "dir"), exist_ok=True)
    with open(os.path.join(CANARY, "canary.txt"), "w") as f:
        f.write("canary\n")
    root = register_root(os.path.join(BASE, "root"))
    try:
        yield Arena(BASE, root, Store(os.path.join(root, "images")))
    finally:
        remove_root(root)
        for top, dirs, files in os.walk(BASE, topdown=False):
            for name in files:
                os.unlink(os.path.join(top, name))
            for name in dirs:
                os.rmdir(os.path.join(top, name))
        os.rmdir(BASE)


def _one_line(text: str) -> bool:
    return bool(text) and "\n" not in text.strip() and "Traceback" not in text


def _problems(case: Case, a: Arena) -> list[str]:
    """Load one case; what went wrong (nothing: refused in one line or loaded contained,
    nothing outside the store changed, the store whole)."""
    path = os.path.join(a.base, "case.tar")
    with open(path, "wb") as f:
        f.write(case.data)
    store = Store(a.store.root)
    before, images = a.outside(), [i.id for i in store.images()]
    out = []
    try:
        archive.load(path, store)
        outcome, message = "contained", ""
    except PycontError as err:
        outcome, message = "refused", str(err)
    except Exception as err:  # what the CLI would print as a traceback
        outcome, message = "crashed", f"{type(err).__name__}: {str(err)[:200]}"
    if outcome != case.expect:
        out.append(f"{outcome}, expected {case.expect}: {message}")
    elif outcome == "refused":
        if not _one_line(message) or not re.search(case.match, message):
            out.append(f"refused, but not in one line matching {case.match!r}: {message}")
        if [i.id for i in Store(a.store.root).images()] != images:
            out.append("refused, but the images changed")
    if a.outside() != before or os.path.lexists("/etc/pycont-pwned"):
        out.append("something outside the store changed")
    report = fsck.check(Store(a.store.root))  # `pycont system check`
    if not report.clean:
        out.append("store check: " + "; ".join(report.lines()))
    if [n for n in os.listdir(a.store.root) if n.startswith(".stage-")]:
        out.append("a staging folder was left")
    return [f"{case.cls}/{case.id}: {p}" for p in out]


def test_the_corpus_is_large_and_mixed() -> None:
    assert len(CASES) >= 100
    assert {c.expect for c in CASES} == {"refused", "contained"}
    assert len({c.cls for c in CASES}) >= 10


@pytest.mark.parametrize("cls", sorted({c.cls for c in CASES}))
def test_hostile_archives(cls: str, arena: Arena, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case of one class (a test per class: 250 tests' set-up would double the time)."""
    monkeypatch.setenv(MAX_LAYER_SIZE_ENV, str(LIMIT))
    problems = []
    for case in (c for c in CASES if c.cls == cls):
        problems.extend(_problems(case, arena))
    Store(arena.store.root).images()  # `pycont images` works
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case_id", _via_cli())
def test_hostile_archive_cli(case_id: str, arena: Arena) -> None:
    case = BY_ID[case_id]
    path = os.path.join(arena.base, "case.tar")
    with open(path, "wb") as f:
        f.write(case.data)
    before = arena.outside()
    env = {"PYCONT_ROOT": arena.root, MAX_LAYER_SIZE_ENV: str(LIMIT)}
    r = cli("load", "-i", path, env=env)
    if case.expect == "refused":
        assert r.returncode == 125, r.stderr
        assert _one_line(r.stderr), r.stderr
        assert re.search(case.match, r.stderr), r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    assert arena.outside() == before


def test_max_layer_size_flag(arena: Arena) -> None:
    """``pycont load --max-layer-size``: checked as a size, then it bounds every layer."""
    path = os.path.join(arena.base, "case.tar")
    with open(path, "wb") as f:
        f.write(BY_ID["gzip-small-ok"].data)  # a 1 MiB layer
    env = {"PYCONT_ROOT": arena.root}
    r = cli("load", "--max-layer-size", "512k", "-i", path, env=env)
    assert r.returncode == 125, r.stderr
    assert _one_line(r.stderr) and "more than 524288 bytes uncompressed" in r.stderr, r.stderr
    assert "raise it with --max-layer-size" in r.stderr
    r = cli("load", "--max-layer-size", "big", "-i", path, env=env)
    assert r.returncode == 125 and 'invalid --max-layer-size "big"' in r.stderr, r.stderr
    r = cli("load", "--max-layer-size", "2m", "-i", path, env=env)
    assert r.returncode == 0, r.stderr


def test_max_layer_size_flag_on_pull(arena: Arena) -> None:
    """``pycont pull --max-layer-size`` from a folder registry (``dir:``): the layer is
    refused while it is gunzipped and unpacked, the path every pull takes."""
    layer = tar_of(f("pulled", bytes(1 << 20)))  # not in the store yet: unpacked
    layout = os.path.join(arena.base, "layout")
    with tarfile.open(fileobj=io.BytesIO(oci_archive([gz(layer)], "1", [sha(layer)], True))) as t:
        t.extractall(layout, filter="data")
    env = {"PYCONT_ROOT": arena.root}
    r = cli("pull", "-q", "--max-layer-size", "512k", f"dir:{layout}:pulled/big:1", env=env)
    assert r.returncode != 0 and _one_line(r.stderr), r.stderr
    assert "the layer passes 512KiB uncompressed" in r.stderr, r.stderr
    r = cli("pull", "-q", f"dir:{layout}:pulled/big:1", env=env)
    assert r.returncode == 0, r.stderr


def test_store_works_after_the_corpus(arena: Arena) -> None:
    # One contained case loaded here, so the test holds alone (-k) as after the whole corpus.
    contained = next(c for c in CASES if c.expect == "contained")
    assert _problems(contained, arena) == []
    env = {"PYCONT_ROOT": arena.root}
    images = cli("images", env=env)
    assert images.returncode == 0, images.stderr
    assert "hostile/" in images.stdout
    check = cli("system", "check", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert " 0 problems" in check.stdout
