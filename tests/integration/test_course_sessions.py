"""Two runs of a chapter at once on one machine, as root: neither disturbs the other.

Another learner's kernel is a second process that opens chapter 42 and starts its container
``ch42-box``; this test's process opens the same chapter, starts a ``ch42-box`` of its own,
cleans up, and the other's container still runs. Once the other kernel is killed (an
interrupted run), the next run of the chapter takes back what it left. Chapter 05's registry
helper refuses a port that another program serves, and never talks to it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

import pycont
from pycont import course
from pycont.course.registry import LocalRegistry
from pycont.course.session import rooted
from pycont.errors import RegistryError
from pycont.fsutil import remove_tree
from tests.helpers import REPO, process_gone, requires, wait_for
from tests.registry_server import FakeRegistry, install_registry

OTHER_KERNEL = """
import sys
import pycont
from pycont.course import Chapter

course = Chapter("42")
box = pycont.run("busybox", ["sleep", "1000"], name="ch42-box", detach=True)
print("ready", course.root, box.id, flush=True)
sys.stdin.read()  # until the test closes it, or kills this "kernel"
"""


@pytest.fixture
def chapter_root(monkeypatch: pytest.MonkeyPatch, pycont_root: str) -> Iterator[str]:
    """No session of this process yet; the chapter's PYCONT_ROOT is undone afterwards."""
    monkeypatch.setattr(course, "_mine", {})
    monkeypatch.setenv("PYCONT_ROOT", pycont_root)
    yield pycont_root
    for session in course._mine.values():
        session.remove()


@pytest.fixture
def other_kernel(chapter_root: str) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """Another learner's run of chapter 42: (its process, its session folder, its box's id)."""
    env = dict(os.environ, PYTHONPATH=REPO, PYCONT_ROOT=chapter_root)
    proc = subprocess.Popen(
        [sys.executable, "-c", OTHER_KERNEL],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = ""
    while not line.startswith("ready"):  # after the lines on what this machine allows
        line = proc.stdout.readline()
        assert line, "the other kernel ended before its container started"
    _, root, box_id = line.split()
    try:
        yield proc, root, box_id
    finally:
        proc.kill()
        proc.wait()
        if os.path.exists(root):  # the test failed before the next run took it back
            with rooted(root):
                for c in pycont.containers(all=True):
                    c.remove(force=True)
            remove_tree(root)


def _status_in(root: str, name: str) -> str:
    with rooted(root):
        try:
            return str(pycont.get(name).status)
        except pycont.ContainerNotFound:
            return "gone"


@requires("root")
def test_two_runs_of_a_chapter_do_not_disturb_each_other(
    other_kernel: tuple[subprocess.Popen[str], str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    proc, other_root, other_box = other_kernel
    mine = course.Chapter("42")
    assert mine.root != other_root
    box = pycont.run("busybox", ["sleep", "1000"], name="ch42-box", detach=True)  # same name
    assert box.id != other_box
    capsys.readouterr()
    mine.clean()
    assert capsys.readouterr().out.strip() == "✓ nothing is left from chapter 42"
    assert _status_in(mine.root, "ch42-box") == "gone"
    assert _status_in(other_root, "ch42-box") == "running"
    again = course.Chapter("42")  # from the top: the other run is alive, not a leftover
    assert "removed" not in capsys.readouterr().out
    assert _status_in(other_root, "ch42-box") == "running"

    proc.send_signal(signal.SIGKILL)  # the other kernel dies; its detached container does not
    proc.wait()
    with rooted(other_root):
        pid = pycont.get("ch42-box").pid
    assert _status_in(other_root, "ch42-box") == "running"
    course.Chapter("42")
    out = capsys.readouterr().out
    assert "removed what an earlier run of this chapter left: ch42-box" in out
    assert not os.path.exists(other_root)
    assert process_gone(pid)
    assert os.environ["PYCONT_ROOT"] == again.root


@pytest.fixture(scope="module")
def registry_binary() -> None:
    reason = install_registry()
    if reason:
        pytest.skip(reason)


def test_the_chapter_registry_serves_on_a_port_of_its_own(registry_binary: None) -> None:
    with tempfile.TemporaryDirectory(prefix="pycont-ch05-") as folder:
        one, two = LocalRegistry(f"{folder}/one"), LocalRegistry(f"{folder}/two")
        one.start()
        try:
            two.start()  # a second run of chapter 05 at the same time
            try:
                assert one.port and two.port and one.port != two.port
                assert one.get("/v2/") == (200, "{}") and two.get("/v2/") == (200, "{}")
            finally:
                two.stop()
        finally:
            one.stop()
        assert process_gone(one.pid) and process_gone(two.pid)


def test_the_chapter_registry_refuses_a_port_another_program_serves(
    registry_binary: None,
) -> None:
    with tempfile.TemporaryDirectory(prefix="pycont-ch05-") as folder, FakeRegistry() as other:
        port = int(other.host.rsplit(":", 1)[1])
        taken = LocalRegistry(f"{folder}/taken", port=port)  # a fixed port, someone else's
        with pytest.raises(RegistryError, match=f"127.0.0.1:{port} is taken by another program"):
            taken.start()
        assert taken.proc is not None and taken.proc.poll() is not None
        ours = LocalRegistry(f"{folder}/ours")
        ours.start()
        try:
            ours.port = port  # as if the port had changed hands: the check is on the socket
            with pytest.raises(RegistryError, match="served by another program"):
                ours.get("/v2/")
        finally:
            ours.stop()
        wait_for(lambda: process_gone(ours.pid), timeout=10, what="the registry to end")
        assert other.requests == []  # nothing ever talked to the other program's server
