"""pycont compose without containers: the loader, the plan over a fake engine, the CLI parser."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pycont.compose import load, parse
from pycont.compose.interpolate import Interpolator, read_env_file
from pycont.compose.loader import normalize_name
from pycont.compose.model import PROJECT_LABEL, SERVICE_LABEL, Build, Project, Service
from pycont.compose.project import (
    ContainerInfo,
    create_options,
    down,
    follow,
    port_text,
    ps_rows,
    selected,
    up,
)
from pycont.errors import PycontError, UsageError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)


def doc(text: str, tmp_path: Path, name: str | None = "pch2-unit") -> Project:
    return parse(yaml.safe_load(text), str(tmp_path), "compose.yaml", name)


def err(text: str, tmp_path: Path) -> str:
    with pytest.raises(UsageError) as info:
        doc(text, tmp_path)
    return str(info.value)


# -- files and names -----------------------------------------------------------------------
def test_file_lookup_follows_the_spec_order(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text("services: {old: {image: busybox}}\n")
    assert load(cwd=str(tmp_path)).services[0].name == "old"
    (tmp_path / "compose.yaml").write_text("services: {new: {image: busybox}}\n")
    assert load(cwd=str(tmp_path)).services[0].name == "new"


def test_no_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no compose file in .*compose.yaml, compose.yml"):
        load(cwd=str(tmp_path))


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web: [\n")
    with pytest.raises(UsageError, match=r"compose.yaml: invalid YAML at line \d+"):
        load(cwd=str(tmp_path))


def test_project_name_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "My.App_Dir"
    d.mkdir()
    (d / "compose.yaml").write_text("services: {web: {image: busybox}}\n")
    assert load(cwd=str(d)).name == "myapp_dir"
    (d / "compose.yaml").write_text("name: fromfile\nservices: {web: {image: busybox}}\n")
    assert load(cwd=str(d)).name == "fromfile"
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "fromenv")
    assert load(cwd=str(d)).name == "fromenv"
    assert load(cwd=str(d), name="fromflag").name == "fromflag"
    with pytest.raises(UsageError, match="invalid project name 'Bad' \\(-p\\)"):
        load(cwd=str(d), name="Bad")


def test_normalize_name() -> None:
    assert normalize_name("-_Hello World.1") == "helloworld1"


def test_docker_compose_names(tmp_path: Path) -> None:
    p = doc(
        """
        version: "3.9"
        services:
          web: {build: ./app, volumes: ["data:/data"]}
          db: {image: busybox, container_name: thedb, networks: [back]}
        networks: {back: {}}
        volumes: {data: {}}
        """,
        tmp_path,
    )
    web, db = p.service("web"), p.service("db")
    assert web.container_name == "pch2-unit-web-1" and web.image == "pch2-unit-web"
    assert web.build == Build(str(tmp_path / "app"))
    assert db.container_name == "thedb"
    assert web.networks[0].name == "pch2-unit_default"
    assert db.networks[0].name == "pch2-unit_back"
    assert web.volumes[0].spec() == "pch2-unit_data:/data"
    assert set(p.networks) == {"default", "back"}
    assert p.volumes["data"].name == "pch2-unit_data"


def test_unused_networks_are_not_part_of_the_project(tmp_path: Path) -> None:
    p = doc("services: {a: {image: x, networks: [n]}}\nnetworks: {n: {}, unused: {}}", tmp_path)
    assert set(p.networks) == {"n"}


# -- refusals ------------------------------------------------------------------------------
def test_unsupported_service_key_is_one_clear_line(tmp_path: Path) -> None:
    msg = err("services: {web: {image: x, healthcheck: {test: [CMD, true]}}}", tmp_path)
    assert msg.startswith(
        "compose.yaml: services.web.healthcheck is not supported by pycont compose"
    )
    assert "(supported: build, command, " in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("configs: {}\nservices: {a: {image: x}}", "configs is not supported"),
        ("services: {a: {image: x, restart: always}}", "services.a.restart: 'always'"),
        ("services: {a: {image: x, tty: true}}", "services.a.tty: a terminal"),
        ("services: {a: {}}", "services.a: needs an image or a build"),
        ("services: {a: {image: x, depends_on: [b]}}", "no such service 'b'"),
        (
            "services: {a: {image: x, depends_on: {b: {condition: service_healthy}}}, "
            "b: {image: x}}",
            "'service_healthy' is not supported",
        ),
        ("services: {a: {image: x, volumes: ['data:/d']}}", "undefined volume 'data'"),
        ("services: {a: {image: x, volumes: ['/d']}}", "anonymous volumes are not supported"),
        ("services: {a: {image: x, networks: [n]}}", "undefined network 'n'"),
        ("services: {a: {image: x, networks: []}}", "an empty list"),
        ("services: {a: {image: x}}\nnetworks: {n: {driver: overlay}}", "'overlay'"),
        ("services: {a: {image: x, ports: ['80:80:80:80']}}", "invalid port '80:80:80:80'"),
        (
            "services: {a: {image: x, labels: {com.docker.compose.project: y}}}",
            "prefix is reserved",
        ),
        (
            "services: {a: {image: x}}\nnetworks: {n: {external: true, driver: bridge}}",
            "an external network takes only `name`",
        ),
        ("services: {a: {image: x, build: {context: ., ssh: [default]}}}", "build.ssh"),
    ],
)
def test_refused(tmp_path: Path, text: str, expected: str) -> None:
    msg = err(text, tmp_path)
    assert expected in msg and msg.startswith("compose.yaml: ") and "\n" not in msg


def test_extension_keys_are_allowed(tmp_path: Path) -> None:
    p = doc("x-common: &c {image: busybox}\nservices: {a: {<<: *c, x-note: hi}}", tmp_path)
    assert p.services[0].image == "busybox"


def test_restart_no_is_accepted_even_as_yaml_false(tmp_path: Path) -> None:
    assert doc("services: {a: {image: x, restart: no}}", tmp_path).services[0].restart == "no"


# -- dependency order ----------------------------------------------------------------------
def test_depends_on_orders_services(tmp_path: Path) -> None:
    p = doc(
        """
        services:
          web: {image: x, depends_on: {api: {condition: service_started}}}
          api: {image: x, depends_on: [db, cache]}
          db: {image: x}
          cache: {image: x}
          other: {image: x}
        """,
        tmp_path,
    )
    assert p.service_names() == ["db", "cache", "api", "web", "other"]
    assert [s.name for s in selected(p, ["api"])] == ["db", "cache", "api"]


def test_a_cycle_is_named(tmp_path: Path) -> None:
    msg = err(
        "services: {a: {image: x, depends_on: [b]}, b: {image: x, depends_on: [c]}, "
        "c: {image: x, depends_on: [a]}}",
        tmp_path,
    )
    assert "dependency cycle between services: a -> b -> c -> a" in msg


# -- values ----------------------------------------------------------------------------------
def test_ports_short_and_long(tmp_path: Path) -> None:
    p = doc(
        """
        services:
          a:
            image: x
            ports:
              - "8080:80"
              - 9000
              - "127.0.0.1:5353:53/udp"
              - {target: 80, published: "8081", host_ip: 127.0.0.1, protocol: tcp}
              - {target: 443}
        """,
        tmp_path,
    )
    assert p.services[0].ports == (
        "8080:80",
        "9000",
        "127.0.0.1:5353:53/udp",
        "127.0.0.1:8081:80/tcp",
        "443",
    )


def test_port_text_as_docker_ps() -> None:
    assert port_text("8080:80") == "0.0.0.0:8080->80/tcp"
    assert port_text("127.0.0.1:5353:53/udp") == "127.0.0.1:5353->53/udp"
    assert port_text("9000") == "9000/tcp"


def test_volumes_short_and_long(tmp_path: Path) -> None:
    p = doc(
        """
        services:
          a:
            image: x
            volumes:
              - ./src:/src:ro
              - /etc:/host-etc
              - data:/data
              - {type: volume, source: data, target: /d2, read_only: true}
              - {type: bind, source: ../up, target: /up}
        volumes:
          data: {name: shared-data}
        """,
        tmp_path,
    )
    specs = [m.spec() for m in p.services[0].volumes]
    assert specs == [
        f"{tmp_path}/src:/src:ro",
        "/etc:/host-etc",
        "shared-data:/data",
        "shared-data:/d2:ro",
        f"{tmp_path.parent}/up:/up",
    ]


def test_environment_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PCH2_FROM_SHELL", "shell")
    monkeypatch.delenv("PCH2_UNSET", raising=False)
    p = doc(
        """
        services:
          a: {image: x, environment: [A=1, PCH2_FROM_SHELL, PCH2_UNSET, "E=x=y"]}
          b: {image: x, environment: {N: 3, T: true, PCH2_FROM_SHELL: null}}
        """,
        tmp_path,
    )
    assert p.service("a").environment == ("A=1", "PCH2_FROM_SHELL=shell", "E=x=y")
    assert p.service("b").environment == ("N=3", "T=true", "PCH2_FROM_SHELL=shell")


def test_commands_networks_and_limits(tmp_path: Path) -> None:
    p = doc(
        """
        services:
          a:
            image: x
            command: sh -c 'echo "hi there"'
            entrypoint: [/bin/env]
            networks: {back: {aliases: [store]}}
            mem_limit: 64m
            cpus: "0.5"
            pids_limit: 64
            user: 1000
            expose: [80]
        networks:
          back:
            ipam: {config: [{subnet: 10.99.0.0/24, gateway: 10.99.0.1}]}
        """,
        tmp_path,
    )
    s = p.services[0]
    assert s.command == ("sh", "-c", 'echo "hi there"') and s.entrypoint == ("/bin/env",)
    assert (s.mem_limit, s.cpus, s.pids_limit, s.user, s.expose) == (
        "64m",
        0.5,
        64,
        "1000",
        ("80",),
    )
    assert p.networks["back"].subnet == "10.99.0.0/24"
    assert p.networks["back"].gateway == "10.99.0.1"
    command, opts = create_options(s, {PROJECT_LABEL: "p"})
    assert command == ["/bin/env", "sh", "-c", 'echo "hi there"']
    assert opts["network"] == "pch2-unit_back"
    assert opts["network_aliases"] == ["a", "store"]
    assert (opts["memory"], opts["cpus"], opts["pids_limit"]) == ("64m", 0.5, 64)
    assert opts["labels"] == {PROJECT_LABEL: "p"} and opts["detach"] is True


def test_external_network(tmp_path: Path) -> None:
    p = doc("services: {a: {image: x}}\nnetworks: {default: {external: true, name: lab}}", tmp_path)
    assert p.networks["default"].external and p.services[0].networks[0].name == "lab"


# -- interpolation -------------------------------------------------------------------------
def test_interpolation_forms() -> None:
    i = Interpolator({"A": "a", "E": ""}, "compose.yaml")
    x = i.expand
    assert x("${A} $A $$A ${A}b", "w") == "a a $A ab"
    assert x("${E:-d} ${E-d} ${U-d} ${U:-${A}} ${U:-${V:-deep}}", "w") == "d  d a deep"
    assert x("${A:+alt} ${U:+alt} 5$ $1 a$-b", "w") == "alt  5$ $1 a$-b"
    assert x("${U}", "services.a.image") == "" and i.warnings == [
        'services.a.image: the "U" variable is not set. Defaulting to a blank string.'
    ]
    with pytest.raises(UsageError, match="required variable U is missing: say it"):
        x("${U:?say it}", "w")
    with pytest.raises(UsageError, match="required variable E is missing: is empty"):
        x("${E:?}", "w")
    assert x("${E?set}", "w") == ""
    with pytest.raises(UsageError, match="missing '}'"):
        x("${A", "w")
    with pytest.raises(UsageError, match="invalid interpolation format"):
        x("${A/x/y}", "w")


def test_dot_env_and_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "# comment\nTAG=from-file\nexport PORT='8080'\nMSG=\"a b\"\nPCH2_X=file # note\n"
    )
    assert read_env_file(str(tmp_path / ".env"))["PCH2_X"] == "file"
    monkeypatch.setenv("PCH2_X", "shell")
    (tmp_path / "compose.yaml").write_text(
        "services:\n  a:\n    image: busybox:${TAG}\n    ports: ['${PORT}:80']\n"
        "    environment: [M=$MSG, X=$PCH2_X, 'P=${COMPOSE_PROJECT_NAME}']\n"
        "    labels: {'$$KEY': v}\n"
    )
    s = load(cwd=str(tmp_path), name="pch2-env").services[0]
    assert s.image == "busybox:from-file" and s.ports == ("8080:80",)
    assert s.environment == ("M=a b", "X=shell", "P=pch2-env")
    assert s.labels == {"$$KEY": "v"}  # keys are not interpolated (the spec)


# -- the plan, on a fake engine ------------------------------------------------------------
class FakeEngine:
    """Records every call; containers and networks live in dicts."""

    def __init__(self, images: tuple[str, ...] = ("busybox",)) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.images = set(images)
        self.networks: dict[str, dict[str, str]] = {}
        self.volumes: set[str] = set()
        self.containers: dict[str, ContainerInfo] = {}
        self.fail_start: set[str] = set()
        self.output: dict[str, list[str]] = {}

    def network_exists(self, name: str) -> bool:
        return name in self.networks

    def create_network(self, name: str, subnet: Any, gateway: Any, labels: dict[str, str]) -> None:
        self.calls.append(("create_network", name, subnet))
        self.networks[name] = labels

    def remove_network(self, name: str) -> None:
        self.calls.append(("remove_network", name))
        del self.networks[name]

    def project_networks(self, project: str) -> list[str]:
        return [n for n, lab in self.networks.items() if lab.get(PROJECT_LABEL) == project]

    def volume_exists(self, name: str) -> bool:
        return name in self.volumes

    def create_volume(self, name: str) -> None:
        self.calls.append(("create_volume", name))
        self.volumes.add(name)

    def remove_volume(self, name: str) -> None:
        self.calls.append(("remove_volume", name))
        self.volumes.remove(name)

    def image_exists(self, ref: str) -> bool:
        return ref in self.images

    def pull(self, ref: str) -> None:
        self.calls.append(("pull", ref))
        self.images.add(ref)

    def build(self, build: Build, tag: str) -> None:
        self.calls.append(("build", tag))
        self.images.add(tag)

    def container(self, name: str) -> ContainerInfo | None:
        return self.containers.get(name)

    def project_containers(self, project: str) -> list[ContainerInfo]:
        return [c for c in self.containers.values() if c.labels.get(PROJECT_LABEL) == project]

    def create_container(self, service: Service, labels: dict[str, str]) -> None:
        self.calls.append(("create", service.container_name))
        name = service.container_name
        self.containers[name] = ContainerInfo(name, service.image, "created", "Created", labels)

    def _set(self, name: str, status: str, code: int | None = None) -> None:
        old = self.containers[name]
        text = "Up 1 second" if status == "running" else f"Exited ({code})"
        self.containers[name] = ContainerInfo(name, old.image, status, text, old.labels, code)

    def start(self, name: str) -> None:
        if name in self.fail_start:
            raise PycontError(f"cannot start {name}")
        self.calls.append(("start", name))
        self._set(name, "running")

    def stop(self, name: str) -> None:
        self.calls.append(("stop", name))
        self._set(name, "exited", 137)

    def remove(self, name: str) -> None:
        self.calls.append(("remove", name))
        del self.containers[name]

    def logs(self, name: str, follow: bool) -> Iterator[str]:
        yield from self.output.get(name, [])
        if follow:
            self._set(name, "exited", 0)


STACK = """
services:
  web: {build: ., depends_on: [db], ports: ["8080:80"], volumes: ["data:/d"]}
  db: {image: busybox, networks: [back]}
networks:
  back: {ipam: {config: [{subnet: 10.98.0.0/24}]}}
volumes:
  data: {}
"""


def test_up_makes_everything_in_order(tmp_path: Path) -> None:
    p, e = doc(STACK, tmp_path), FakeEngine()
    assert up(p, e) == 0
    assert e.calls == [
        ("create_network", "pch2-unit_back", "10.98.0.0/24"),
        ("create_network", "pch2-unit_default", None),
        ("create_volume", "pch2-unit_data"),
        ("build", "pch2-unit-web"),
        ("create", "pch2-unit-db-1"),
        ("start", "pch2-unit-db-1"),
        ("create", "pch2-unit-web-1"),
        ("start", "pch2-unit-web-1"),
    ]
    web = e.containers["pch2-unit-web-1"]
    assert web.labels[PROJECT_LABEL] == "pch2-unit" and web.labels[SERVICE_LABEL] == "web"
    assert e.networks["pch2-unit_back"][PROJECT_LABEL] == "pch2-unit"


def test_up_again_leaves_running_containers_and_remakes_exited_ones(tmp_path: Path) -> None:
    p, e = doc(STACK, tmp_path), FakeEngine()
    up(p, e)
    e._set("pch2-unit-db-1", "exited", 1)
    e.calls.clear()
    up(p, e, build=True)
    assert e.calls == [
        ("build", "pch2-unit-web"),
        ("remove", "pch2-unit-db-1"),
        ("create", "pch2-unit-db-1"),
        ("start", "pch2-unit-db-1"),
    ]


def test_up_refuses_a_foreign_container_of_the_same_name(tmp_path: Path) -> None:
    p, e = doc("services: {a: {image: busybox}}", tmp_path), FakeEngine()
    e.containers["pch2-unit-a-1"] = ContainerInfo("pch2-unit-a-1", "busybox", "running")
    with pytest.raises(UsageError, match="already in use by a container outside project"):
        up(p, e)
    assert "pch2-unit_default" not in e.networks  # what up made is gone again


def test_a_failing_up_removes_what_it_made(tmp_path: Path) -> None:
    p, e = doc(STACK, tmp_path), FakeEngine()
    e.networks["pch2-unit_back"] = {PROJECT_LABEL: "pch2-unit"}  # there before: kept
    e.fail_start.add("pch2-unit-web-1")
    with pytest.raises(PycontError, match="cannot start pch2-unit-web-1"):
        up(p, e)
    assert e.containers == {}
    assert set(e.networks) == {"pch2-unit_back"}
    assert e.calls[-3:] == [
        ("remove", "pch2-unit-web-1"),
        ("remove", "pch2-unit-db-1"),
        ("remove_network", "pch2-unit_default"),
    ]


def test_external_network_must_exist_and_is_never_removed(tmp_path: Path) -> None:
    text = "services: {a: {image: busybox}}\nnetworks: {default: {external: true, name: lab}}"
    p, e = doc(text, tmp_path), FakeEngine()
    with pytest.raises(UsageError, match="network lab declared as external, but could not be"):
        up(p, e)
    e.networks["lab"] = {PROJECT_LABEL: "pch2-unit"}
    up(p, e)
    down(p, e)
    assert "lab" in e.networks and e.containers == {}


def test_missing_image_is_pulled(tmp_path: Path) -> None:
    p, e = doc("services: {a: {image: alpine}}", tmp_path), FakeEngine()
    up(p, e)
    assert ("pull", "alpine") in e.calls


def test_down_removes_in_reverse_order(tmp_path: Path) -> None:
    p, e = doc(STACK, tmp_path), FakeEngine()
    up(p, e)
    e.calls.clear()
    down(p, e)
    assert e.calls == [
        ("stop", "pch2-unit-web-1"),
        ("remove", "pch2-unit-web-1"),
        ("stop", "pch2-unit-db-1"),
        ("remove", "pch2-unit-db-1"),
        ("remove_network", "pch2-unit_back"),
        ("remove_network", "pch2-unit_default"),
    ]
    assert e.volumes == {"pch2-unit_data"}
    up(p, e)
    down(p, e, volumes=True)
    assert e.volumes == set() and e.networks == {}


def test_ps_rows(tmp_path: Path) -> None:
    p, e = doc(STACK, tmp_path), FakeEngine()
    up(p, e)
    e._set("pch2-unit-db-1", "exited", 3)
    assert ps_rows(p, e) == [
        ("pch2-unit-web-1", "pch2-unit-web", "web", "Up 1 second", "0.0.0.0:8080->80/tcp")
    ]
    assert ps_rows(p, e, all=True)[0] == ("pch2-unit-db-1", "busybox", "db", "Exited (3)", "")


def test_logs_are_prefixed_like_docker_compose(tmp_path: Path) -> None:
    p = doc(
        "services: {web: {image: busybox}, cache: {image: busybox, container_name: c}}", tmp_path
    )
    e = FakeEngine()
    up(p, e)
    e.output = {"pch2-unit-web-1": ["one\n", "two\n"], "c": ["three\n"]}
    names = ["pch2-unit-web-1", "c"]
    assert list(follow(p, e, names, follow_=False)) == [
        "web-1  | one",
        "web-1  | two",
        "c      | three",
    ]
    lines = list(follow(p, e, names, follow_=True))
    assert sorted(lines) == sorted(
        [
            "web-1  | one",
            "web-1  | two",
            "c      | three",
            "web-1 exited with code 0",
            "c exited with code 0",
        ]
    )
    assert lines.index("web-1  | two") < lines.index("web-1 exited with code 0")


def test_up_attached_prints_the_output_until_all_exit(tmp_path: Path) -> None:
    p, e = doc("services: {web: {image: busybox}}", tmp_path), FakeEngine()
    e.output = {"pch2-unit-web-1": ["hello\n"]}
    printed: list[str] = []
    assert up(p, e, detach=False, out=printed.append) == 0
    assert printed == ["web-1  | hello", "web-1 exited with code 0"]


# -- the CLI -------------------------------------------------------------------------------
def _cli(args: list[str]) -> argparse.Namespace:
    from pycont.cli._common import Parser
    from pycont.cli.compose import add_parsers

    parser = Parser(prog="pycont")
    sub = parser.add_subparsers(dest="verb", parser_class=Parser)
    verbs = add_parsers(sub)
    ns = parser.parse_args(args)
    ns.handler = verbs[ns.verb]
    return ns


def test_cli_parses_docker_compose_flags() -> None:
    ns = _cli(["compose", "-f", "x.yaml", "-p", "pch2-a", "up", "-d", "--build", "web"])
    assert (ns.file, ns.project_name, ns.detach, ns.build, ns.services) == (
        "x.yaml",
        "pch2-a",
        True,
        True,
        ["web"],
    )
    assert _cli(["compose", "down", "-v"]).volumes
    assert _cli(["compose", "logs", "-f", "db"]).follow
    with pytest.raises(UsageError):
        _cli(["compose", "restart"])


def test_cli_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "compose.yaml").write_text(STACK)
    ns = _cli(["compose", "-f", str(tmp_path / "compose.yaml"), "-p", "pch2-cfg", "config"])
    assert ns.handler(ns) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["name"] == "pch2-cfg"
    assert list(shown["services"]) == ["db", "web"]
    assert shown["services"]["web"]["container_name"] == "pch2-cfg-web-1"
    assert shown["networks"]["back"]["subnet"] == "10.98.0.0/24"
    ns = _cli(["compose", "-f", str(tmp_path / "compose.yaml"), "config", "--services"])
    ns.handler(ns)
    assert capsys.readouterr().out.split() == ["db", "web"]
