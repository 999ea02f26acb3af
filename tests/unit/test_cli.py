"""The CLI's parsing and formatting: docker's flags, one-line errors, exit code 125."""

from __future__ import annotations

import signal
import time
from types import SimpleNamespace

import pytest

from pycont import cli
from pycont.cli import build_parser, exit_reason
from pycont.cli._common import parse_signal, render_format
from pycont.cli.containers import status_text
from pycont.errors import UsageError


def parse(*argv: str) -> dict[str, object]:
    return vars(build_parser().parse_args(list(argv)))


def test_run_flags_before_the_image() -> None:
    a = parse(
        "run", "--rm", "-d", "--name", "x", "-e", "A=1", "-w", "/tmp", "--pid", "host",
        "busybox", "sh", "-c", "echo hi",
    )  # fmt: skip
    assert a["verb"] == "run"
    assert a["rm"] is True and a["detach"] is True
    assert a["name"] == "x"
    assert a["env"] == ["A=1"]
    assert a["workdir"] == "/tmp"
    assert a["pid"] == "host"
    # Not given: None, the runtime's default (private; no user namespace as root).
    assert a["network"] is a["ipc"] is a["uts"] is a["userns"] is a["cgroupns"] is None
    assert a["image"] == "busybox"
    assert a["command"] == ["sh", "-c", "echo hi"]


def test_flags_after_the_image_belong_to_the_command() -> None:
    a = parse("run", "busybox", "ls", "-l", "--rm", "-e", "X", "--name", "y")
    assert a["command"] == ["ls", "-l", "--rm", "-e", "X", "--name", "y"]
    assert a["rm"] is False and a["env"] == [] and a["name"] is None
    a = parse("run", "busybox", "--rm")
    assert a["command"] == ["--rm"] and a["rm"] is False


def test_run_without_command_and_docker_short_flags() -> None:
    a = parse("run", "-h", "web", "-e", "A=1", "-e", "B", "--network", "host", "busybox")
    assert a["hostname"] == "web"
    assert a["env"] == ["A=1", "B"]
    assert a["network"] == "host"
    assert a["command"] == []
    assert parse("run", "--net", "host", "busybox")["network"] == "host"


def test_exec_keeps_the_command_intact() -> None:
    a = parse("exec", "-e", "K=V", "-w", "/tmp", "web", "ps", "-ef", "-e", "X")
    assert a["container"] == "web"
    assert a["env"] == ["K=V"] and a["workdir"] == "/tmp"
    assert a["command"] == ["ps", "-ef", "-e", "X"]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--bogus", "busybox"],
        ["run"],
        ["frobnicate"],
        [],
        ["stop", "-t", "soon", "web"],
        ["rm"],
    ],
)
def test_bad_usage_raises_usage_error(argv: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        build_parser().parse_args(argv)
    assert info.value.exit_code == 125
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "argv",
    [["run", "--bogus", "busybox", "true"], ["exec", "web"], ["kill", "-s", "NOPE", "web"]],
)
def test_main_prints_one_line_and_exits_125(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 125
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("pycont: ")


@pytest.mark.parametrize(
    ("text", "sig"),
    [
        ("TERM", signal.SIGTERM),
        ("term", signal.SIGTERM),
        ("SIGKILL", signal.SIGKILL),
        ("9", signal.SIGKILL),
        ("HUP", signal.SIGHUP),
        ("usr1", signal.SIGUSR1),
        ("15", signal.SIGTERM),
    ],
)
def test_parse_signal(text: str, sig: int) -> None:
    assert parse_signal(text) == sig


@pytest.mark.parametrize("text", ["NOPE", "SIGNOPE", "0", "-9", "65", "", "9.5"])
def test_parse_signal_rejects(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_signal(text)
    assert repr(text) in str(info.value)


DATA = {
    "Id": "abc",
    "State": {"Status": "running", "Pid": 4242, "Running": True, "Error": None},
    "Config": {"Env": ["A=1", "B=2"], "Cmd": ["sh"]},
}


def test_render_format() -> None:
    assert render_format("{{.State.Pid}}", DATA) == "4242"
    assert render_format("{{ .State.Status }}", DATA) == "running"
    assert render_format("{{.State.Running}}", DATA) == "true"
    assert render_format("{{.Config.Env}}", DATA) == "[A=1 B=2]"
    assert render_format("{{.State.Error}}", DATA) == "<no value>"
    assert render_format("pid={{.State.Pid}} id={{.Id}}", DATA) == "pid=4242 id=abc"


def test_render_format_json() -> None:
    import json

    assert json.loads(render_format("{{json .Config}}", DATA)) == DATA["Config"]
    assert render_format("{{json .State.Pid}}", DATA) == "4242"


@pytest.mark.parametrize("fmt", ["{{.State.Nope}}", "{{.Nope}}", "{{.State.Pid.Deeper}}"])
def test_render_format_unknown_field(fmt: str) -> None:
    with pytest.raises(UsageError) as info:
        render_format(fmt, DATA)
    assert info.value.exit_code == 125


def rec(**kw: object) -> SimpleNamespace:
    base: dict[str, object] = {
        "status": "created",
        "started_at": 0.0,
        "finished_at": 0.0,
        "created": time.time(),
        "exit_code": None,
    }
    base.update(kw)
    return SimpleNamespace(**base)


def test_status_text() -> None:
    now = time.time()
    assert status_text(rec()) == "Created"
    assert status_text(rec(status="running", started_at=now - 2 * 3600 - 30)) == "Up 2 hours"
    assert status_text(rec(status="running", started_at=now)) == "Up Less than a second"
    assert status_text(rec(status="paused", started_at=now - 3 * 60 - 5)) == (
        "Up 3 minutes (Paused)"
    )
    assert status_text(rec(status="exited", exit_code=3, finished_at=now - 86400 - 60)) == (
        "Exited (3) 1 day ago"
    )
    assert status_text(rec(status="exited", exit_code=137, finished_at=now - 3600 - 1)) == (
        "Exited (137) 1 hour ago"
    )


class FakeContainer:
    """What exit_reason() reads of a container: its state and its limits."""

    def __init__(self, oom_killed: bool, memory: int | None) -> None:
        self.rec = SimpleNamespace(oom_killed=oom_killed)
        self.lim = SimpleNamespace(memory=memory)

    def state(self) -> SimpleNamespace:
        return self.rec

    def limits(self) -> SimpleNamespace:
        return self.lim


def test_exit_reason_names_an_oom_kill_and_the_limit() -> None:
    assert exit_reason(FakeContainer(True, 32 << 20)) == (
        "killed by the kernel's OOM killer (memory limit 32MiB)"
    )
    assert exit_reason(FakeContainer(True, None)) == "killed by the kernel's OOM killer"
    assert exit_reason(FakeContainer(False, 32 << 20)) == ""


def test_sizes_and_times_come_from_one_module() -> None:
    # docker's size and time formats are written once, in pycont.format.
    from pycont import format, stats_table
    from pycont.cli import images, system

    assert stats_table.binary_size is format.binary_size
    assert stats_table.decimal_size is format.decimal_size
    assert images.decimal_size is system.decimal_size is format.decimal_size
