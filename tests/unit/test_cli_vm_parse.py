"""``pycont vm ...`` and ``%%vm``: flags, bad input and formatting, without booting a VM."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace
from typing import Any

import pytest

from pycont import cli
from pycont.cli.vms import boot_options, status_text, vm_inspect
from pycont.errors import UsageError
from pycont.vm.machine import VMConfig


def parse(*argv: str) -> dict[str, Any]:
    return vars(cli.build_parser().parse_args(list(argv)))


def test_run_flags_before_the_image() -> None:
    a = parse(
        "vm", "run", "--rm", "--name", "hb-x", "-m", "256m", "--cpus", "2", "-e", "A=1",
        "-w", "/tmp", "--timeout", "7.5", "busybox", "sh", "-c", "echo hi",
    )  # fmt: skip
    assert (a["verb"], a["vm_verb"]) == ("vm", "run")
    assert a["rm"] is True and a["detach"] is False
    assert (a["name"], a["memory"], a["cpus"], a["env"]) == ("hb-x", "256m", 2, ["A=1"])
    assert (a["workdir"], a["timeout"]) == ("/tmp", 7.5)
    assert (a["image"], a["command"]) == ("busybox", ["sh", "-c", "echo hi"])


def test_flags_after_the_image_belong_to_the_command() -> None:
    a = parse("vm", "run", "busybox", "ls", "-l", "--rm", "--cpus", "0")
    assert a["command"] == ["ls", "-l", "--rm", "--cpus", "0"]
    assert a["rm"] is False and a["cpus"] == 1 and a["memory"] is None


def test_boot_options_pass_memory_as_text_and_only_when_given() -> None:
    a = cli.build_parser().parse_args(["vm", "run", "-d", "busybox"])
    assert boot_options(a) == {"name": None, "cpus": 1, "env": [], "rm": False}
    a = cli.build_parser().parse_args(["vm", "run", "-m", "1g", "-w", "/etc", "busybox"])
    assert boot_options(a)["memory"] == "1g" and boot_options(a)["workdir"] == "/etc"


@pytest.mark.parametrize("cpus", ["0", "0.5", "-1", "1.5", "two", "nan", "inf", ""])
def test_cpus_must_be_a_whole_number_of_vcpus(
    cpus: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match="whole number of vCPUs.*container's CPU quota"):
        parse("vm", "run", "--cpus", cpus, "busybox")
    assert cli.main(["vm", "run", "--cpus", cpus, "busybox", "true"]) == 125
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--cpus {cpus!r}" in err


@pytest.mark.parametrize("timeout", ["0", "-1", "soon", "inf"])
def test_timeout_must_be_positive_seconds(timeout: str) -> None:
    with pytest.raises(UsageError, match="greater than 0"):
        parse("vm", "run", "--timeout", timeout, "busybox")


def test_detached_run_takes_no_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["vm", "run", "-d", "--timeout", "5", "busybox"]) == 125
    assert "attached run" in capsys.readouterr().err


def test_env_takes_key_value_or_copies_a_set_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HB_SET", "from-host")
    monkeypatch.delenv("HB_UNSET", raising=False)
    assert parse("vm", "run", "-e", "HB_SET", "-e", "K=a=b", "busybox")["env"] == [
        "HB_SET=from-host",
        "K=a=b",
    ]
    with pytest.raises(UsageError, match="HB_UNSET is not set"):
        parse("vm", "run", "-e", "HB_UNSET", "busybox")
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse("vm", "run", "-e", "=x", "busybox")


def test_sub_verbs_and_their_arguments() -> None:
    assert parse("vm", "ls", "-a", "-q") == {
        "verb": "vm",
        "vm_verb": "ls",
        "all": True,
        "quiet": True,
    }
    a = parse("vm", "stop", "-t", "3", "a", "b")
    assert (a["time"], a["names"]) == (3.0, ["a", "b"])
    assert parse("vm", "rm", "-f", "a")["force"] is True
    a = parse("vm", "exec", "-e", "K=V", "a", "ps", "-e", "-w")
    assert (a["vm"], a["env"], a["command"]) == ("a", ["K=V"], ["ps", "-e", "-w"])
    assert parse("vm", "inspect", "-f", "{{.Id}}", "a")["format"] == "{{.Id}}"
    assert parse("vm", "logs", "a")["vm"] == "a"
    assert parse("vm", "prune")["vm_verb"] == "prune"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["vm"], "required: COMMAND"),
        (["vm", "nosuch"], "invalid choice"),
        (["vm", "exec", "a"], "requires a VM and a command"),
        (["vm", "stop", "-t", "-1", "a"], "must be >= 0"),
        (["vm", "rm"], "required: VM"),
    ],
)
def test_bad_usage_is_one_line_and_exit_125(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 125
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("verb", ["run", "ls", "stop", "kill", "rm", "exec", "logs", "inspect"])
def test_each_sub_verb_has_its_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse("vm", verb, "--help")
    assert exc.value.code == 0
    assert f"usage: pycont vm {verb}" in capsys.readouterr().out


# -- what ls and inspect show ----------------------------------------------------------------
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("state", "text"),
    [
        ({"status": "running", "started": NOW - 3}, "Up 3 seconds"),
        ({"status": "exited", "exit_code": 0, "finished": NOW - 5}, "Exited (0) 5 seconds ago"),
        (
            {"status": "exited", "exit_code": None, "exit_reason": "kernel panic"},
            "Exited (kernel panic)",
        ),
        (
            {
                "status": "exited",
                "exit_code": None,
                "exit_reason": "timeout",
                "finished": NOW - 120,
            },
            "Exited (timeout) 2 minutes ago",
        ),
        ({"status": "created"}, "Created"),
    ],
)
def test_status_text(state: dict[str, Any], text: str) -> None:
    assert status_text(state, now=NOW) == text


def test_inspect_has_dockers_layout_and_the_vms_own_facts() -> None:
    cfg = VMConfig(
        id="ab" * 32, name="hb-i", image="busybox:latest", image_id="sha256:00",
        command=["sleep", "9"], env={"PATH": "/bin"}, workdir="/", memory=128 << 20, cpus=2,
        rm=False, created=time.time(), accel="tcg", accel_reason="no /dev/kvm",
        kernel_version="6.1.0-57-amd64",
    )  # fmt: skip
    state = {"status": "running", "pid": 42, "started": cfg.created, "marks": {"READY": 3.1}}
    v: Any = SimpleNamespace(config=cfg, folder="/x/vms/abab", state=lambda: state)
    d = vm_inspect(v)
    assert (d["Id"], d["Name"], d["Image"], d["Path"], d["Args"]) == (
        cfg.id, "hb-i", "busybox:latest", "sleep", ["9"],
    )  # fmt: skip
    assert d["State"]["Pid"] == 42 and d["State"]["Running"] is True
    assert d["State"]["ExitCode"] is None and d["State"]["Marks"] == {"READY": 3.1}
    assert d["State"]["FinishedAt"] == "0001-01-01T00:00:00Z"
    assert d["Config"]["Env"] == ["PATH=/bin"] and d["Config"]["Cpus"] == 2
    assert d["Machine"]["Accel"] == "tcg" and d["Machine"]["KernelVersion"] == "6.1.0-57-amd64"
    assert d["LogPath"] == "/x/vms/abab/console.log"


def test_ls_of_an_empty_store_prints_the_header(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["vm", "ls", "-a"]) == 0
    header = capsys.readouterr().out.split()
    assert header[:3] == ["VM", "ID", "NAME"] and header[-3:] == ["ACCEL", "MEMORY", "CPUS"]


def test_a_name_that_is_no_vm_is_one_error_line_per_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["vm", "rm", "hb-nosuch1", "hb-nosuch2"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "Error response from daemon: no such VM: hb-nosuch1",
        "Error response from daemon: no such VM: hb-nosuch2",
    ]


# -- %%vm ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--bogus busybox", "unrecognized arguments: --bogus"),
        ("--cpus 0.5 busybox", "whole number of vCPUs"),
        ("-m 1m busybox", "at least 128m"),
        ("-m lots busybox", "-m"),
        ("-d --timeout 3 busybox", "attached run"),
        ("--name 'unclosed busybox", "closing quotation"),
        ("", "required: image"),
    ],
)
def test_a_bad_cell_line_is_an_ipython_usage_error(line: str, message: str) -> None:
    from IPython.core.error import UsageError as IPythonUsageError

    from pycont.magics import VMRunner

    out = io.StringIO()
    with pytest.raises(IPythonUsageError, match=message) as exc:
        VMRunner(out=out).run(line, "echo hi")
    assert str(exc.value).startswith("%%vm: ") and "\n" not in str(exc.value)
    assert out.getvalue() == ""


def test_vm_cell_help_prints_the_flags_and_returns(capsys: pytest.CaptureFixture[str]) -> None:
    from pycont.magics import VMRunner

    assert VMRunner().run("--help", "echo hi") == 0
    out = capsys.readouterr().out
    assert "usage: %%vm" in out and "--cpus" in out and "--memory" in out


def test_budgeted_output_shows_the_head_and_the_tail() -> None:
    from pycont.magics import BudgetedOutput

    out = io.StringIO()
    shown = BudgetedOutput(out, budget=10)
    for chunk in ("abcdef", "ghijkl", "y" * 5000, "mnop"):
        shown(chunk)
    shown.close()
    # 5016 characters: 10 shown, the last 4096 (OUTPUT_TAIL) shown after the notice, 910 not
    head, _, rest = out.getvalue().partition("\n[pycont] output throttled: 910 more characters")
    assert head == "abcdefghij"
    assert rest.endswith("the last 4,096:\n" + "y" * 4092 + "mnop")

    out = io.StringIO()
    small = BudgetedOutput(out, budget=10)
    small("short")
    small.close()
    assert out.getvalue() == "short"
