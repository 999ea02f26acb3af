"""pycont compose with real containers and networks: up, ps, logs, down, and a failed up.

Each test's project is ``pch2-<random>``: the only containers, networks and volumes it makes
carry that name, and the fixture takes the project down (with its volumes) even when the
test fails. PYCONT_ROOT is the session's own (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycont.compose import Project, load
from tests.helpers import cli, requires, wait_for

# pycont.net (bridges, leases, /etc/hosts aliases) is written alongside compose: the lead
# turns this on once containers on user-defined networks work end to end.
NETWORKS_READY = True

pytestmark = [
    requires("root", "overlay"),
    pytest.mark.skipif(not NETWORKS_READY, reason="pycont.net is not ready for compose yet"),
]

STACK = """
services:
  web:
    image: busybox
    depends_on: [db]
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"]
    environment:
      GREETING: ${PCH2_GREETING:-hello}
  db:
    image: busybox
    command: >-
      sh -c "mkdir -p /www && echo db-says-hi > /www/index.html;
      httpd -f -p 8000 -h /www & trap 'exit 0' TERM; wait"
    volumes: ["data:/data"]
volumes:
  data: {}
"""


class Stack:
    def __init__(self, path: Path, name: str) -> None:
        self.path, self.name = path, name

    def load(self) -> Project:
        return load(str(self.path), self.name)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """A compose file in tmp_path and its project name; the project is taken down after."""
    from pycont.compose.engine import RealEngine
    from pycont.compose.project import down

    (tmp_path / "compose.yaml").write_text(STACK)
    s = Stack(tmp_path / "compose.yaml", f"pch2-{uuid.uuid4().hex[:8]}")
    try:
        yield s
    finally:
        with contextlib.suppress(Exception):
            down(s.load(), RealEngine(), volumes=True)


def _gone(project: str) -> bool:
    import pycont
    from pycont.net import networks

    return not any(c.name.startswith(project) for c in pycont.containers(all=True)) and not any(
        n.name.startswith(project) for n in networks.ls()
    )


def test_up_ps_down(stack: Stack) -> None:
    import pycont
    from pycont import volumes
    from pycont.compose.engine import RealEngine
    from pycont.compose.model import PROJECT_LABEL, SERVICE_LABEL
    from pycont.compose.project import down, ps_rows, up
    from pycont.net import networks

    p, engine = stack.load(), RealEngine()
    assert up(p, engine, detach=True) == 0
    web, db = pycont.get(f"{stack.name}-web-1"), pycont.get(f"{stack.name}-db-1")
    assert web.status == "running" and db.status == "running"
    assert web.config.labels[PROJECT_LABEL] == stack.name
    assert web.config.labels[SERVICE_LABEL] == "web"
    net = networks.get(f"{stack.name}_default")
    assert net.labels[PROJECT_LABEL] == stack.name
    assert f"{stack.name}_data" in volumes.names()
    # Compose's promise: a service reaches another by its service name on their network.
    wait_for(
        lambda: "db-says-hi" in web.exec(["wget", "-q", "-O-", "http://db:8000/"]).output,  # type: ignore[union-attr]
        timeout=30,
        what="web to fetch http://db:8000/ by the service name",
    )
    assert web.exec(["sh", "-c", "echo $GREETING"]).output == "hello\n"  # type: ignore[union-attr]
    assert [r[2] for r in ps_rows(p, engine)] == ["db", "web"]

    assert up(p, engine, detach=True) == 0  # again: both run, nothing is made anew
    assert pycont.get(f"{stack.name}-web-1").id == web.id

    down(p, engine)
    assert _gone(stack.name)
    assert f"{stack.name}_data" in volumes.names()  # kept without -v, as docker compose
    down(p, engine, volumes=True)
    assert f"{stack.name}_data" not in volumes.names()


def test_a_failed_up_leaves_nothing(stack: Stack) -> None:
    from pycont.compose.engine import RealEngine
    from pycont.compose.project import up
    from pycont.errors import PycontError

    stack.path.write_text(
        "services:\n  ok: {image: busybox, command: [sleep, '300']}\n"
        "  bad: {image: busybox, command: [/pch2-no-such-command], depends_on: [ok]}\n"
    )
    with pytest.raises(PycontError):
        up(stack.load(), RealEngine(), detach=True)
    assert _gone(stack.name)


def test_up_attached_prints_prefixed_output(stack: Stack) -> None:
    from pycont.compose.engine import RealEngine
    from pycont.compose.project import follow, up

    stack.path.write_text(
        "services:\n  a: {image: busybox, command: [sh, -c, 'echo one; echo two']}\n"
        "  bb: {image: busybox, command: [echo, three]}\n"
    )
    p, lines = stack.load(), list[str]()
    assert up(p, RealEngine(), detach=False, out=lines.append) == 0
    assert lines.index("a-1   | one") < lines.index("a-1   | two")
    assert "bb-1  | three" in lines and "a-1 exited with code 0" in lines
    names = [s.container_name for s in p.services]
    assert list(follow(p, RealEngine(), names, follow_=False)) == [
        "a-1   | one",
        "a-1   | two",
        "bb-1  | three",
    ]


def test_cli(stack: Stack) -> None:
    from pycont.cli import VERB_NAMES

    if "compose" not in VERB_NAMES:
        pytest.skip("the compose verb is not registered in pycont/cli/__init__.py yet")
    base = ("compose", "-f", str(stack.path), "-p", stack.name)
    up = cli(*base, "up", "-d", timeout=120)
    assert up.returncode == 0, up.stderr
    assert f"Container {stack.name}-web-1  Started" in up.stderr
    ps = cli(*base, "ps")
    assert ps.stdout.split("\n")[0].split() == ["NAME", "IMAGE", "SERVICE", "STATUS", "PORTS"]
    assert f"{stack.name}-db-1" in ps.stdout and f"{stack.name}-web-1" in ps.stdout
    down = cli(*base, "down", "-v", timeout=120)
    assert down.returncode == 0, down.stderr
    assert _gone(stack.name)


TWO_NETWORKS = """
services:
  front:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"]
    networks: [edge]
  middle:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"]
    networks:
      edge: {}
      back: {aliases: [mid]}
  db:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"]
    networks: [back]
networks:
  edge: {}
  back: {}
"""


def test_a_service_on_two_networks_bridges_them_by_name(tmp_path: Path) -> None:
    import pycont
    from pycont.compose.engine import RealEngine
    from pycont.compose.project import down, up

    (tmp_path / "compose.yaml").write_text(TWO_NETWORKS)
    name = f"pch2-{uuid.uuid4().hex[:8]}"
    p = load(str(tmp_path / "compose.yaml"), name)
    try:
        assert up(p, RealEngine(), detach=True) == 0
        middle = pycont.get(f"{name}-middle-1")
        assert [a.network for a in middle.config.network.networks] == [
            f"{name}_edge",
            f"{name}_back",
        ]

        def reach(who: str, target: str) -> bool:
            r = pycont.get(f"{name}-{who}-1").exec(["ping", "-c", "1", "-W", "2", target])
            return r.exit_code == 0

        assert reach("front", "middle") and reach("db", "mid")  # each on its own network
        assert reach("middle", "front") and reach("middle", "db")
        assert not reach("front", "db")  # no network in common
    finally:
        down(p, RealEngine(), volumes=True)
    assert _gone(name)
