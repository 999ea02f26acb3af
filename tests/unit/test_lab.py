"""The lab VM's decisions and plumbing, without booting anything: backend choice from a probe,
the kernel's connection and network as the guest sees them, the labels every summary shows."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pycont.kernel.probe import Answer, lab_note
from pycont.vm.errors import VMError
from pycont.vm.lab import (
    GUEST_STORE,
    KERNEL_PORTS,
    ConsoleFilter,
    LabInfo,
    choose_backend,
    guest_connection,
    guest_env,
    keep_paths,
    kernel_command,
    lab_info,
    netdev_args,
)
from pycont.vm.labkernel import kernel_json, main

CONN = {
    "ip": "127.0.0.1",
    "transport": "tcp",
    "key": "k",
    "signature_scheme": "hmac-sha256",
    "shell_port": 40001,
    "iopub_port": 40002,
    "stdin_port": 40003,
    "control_port": 40004,
    "hb_port": 40005,
}
INFO = LabInfo(
    reason="no userns", accel="TCG: no KVM", kernel="6.1.0-57-amd64", memory="1G", cpus=1
)


def fake_probe(mode: str, cgroup_ok: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        mode=mode,
        cgroup_writable=Answer(cgroup_ok, "cgroup owned by root"),
        user_namespaces=Answer(mode != "unprivileged", "unshare(CLONE_NEWUSER): EPERM"),
    )


def yes() -> tuple[bool, str]:
    return True, "qemu with kernel 6.1"


def no() -> tuple[bool, str]:
    return False, "qemu-system-x86_64 not found"


@pytest.mark.parametrize(
    ("mode", "cgroup_ok", "available", "name", "words"),
    [
        ("root", False, yes, "local", "root on this host"),
        ("rootless", True, yes, "local", "delegated cgroup"),
        ("rootless", False, yes, "vm", "no cgroup limits (cgroup owned by root)"),
        ("unprivileged", False, yes, "vm", "no user namespaces (unshare(CLONE_NEWUSER): EPERM)"),
        ("unprivileged", False, no, "local", "no lab VM either (qemu-system-x86_64 not found)"),
    ],
)
def test_backend_follows_the_probe(mode, cgroup_ok, available, name, words) -> None:
    b = choose_backend({}, lambda: fake_probe(mode, cgroup_ok), available)
    assert b.name == name
    assert words in b.reason


def test_backend_forced_and_refused() -> None:
    never = lambda: pytest.fail("a forced backend does not probe")  # noqa: E731
    assert choose_backend({"PYCONT_BACKEND": "vm"}, never, no).name == "vm"
    assert choose_backend({"PYCONT_BACKEND": "local"}, never, yes).reason == "PYCONT_BACKEND=local"
    with pytest.raises(VMError, match=r"PYCONT_BACKEND='docker': accepted values are local and vm"):
        choose_backend({"PYCONT_BACKEND": "docker"}, never, yes)


def test_in_the_lab_vm_the_backend_is_local() -> None:
    env = {"PYCONT_LAB_VM": json.dumps(INFO.__dict__)}
    b = choose_backend(env, lambda: pytest.fail("no probe needed"), yes)
    assert b.name == "local"
    assert lab_info(env) == INFO
    assert lab_info({"PYCONT_LAB_VM": "not json"}) is None
    assert lab_info({}) is None


def test_labels() -> None:
    env = {"PYCONT_LAB_VM": json.dumps(INFO.__dict__)}
    assert lab_note(env) == "in pycont's lab VM (6.1.0-57-amd64, TCG) because no userns"
    assert INFO.label() == "ran in pycont's lab VM (6.1.0-57-amd64, TCG) because no userns"
    assert lab_note({"PYCONT_LAB_FAILED": "qemu died"}) == (
        "pycont's lab VM could not start here (qemu died)"
    )
    assert lab_note({}) == ""


def test_guest_connection_listens_everywhere_on_the_same_ports() -> None:
    guest = guest_connection(CONN)
    assert guest["ip"] == "0.0.0.0"
    assert all(guest[k] == CONN[k] for k in KERNEL_PORTS)
    with pytest.raises(VMError, match="tcp only"):
        guest_connection({**CONN, "transport": "ipc"})
    with pytest.raises(VMError, match="no hb_port"):
        guest_connection({k: v for k, v in CONN.items() if k != "hb_port"})


def test_network_is_restricted_and_forwards_only_the_kernel_ports() -> None:
    args = netdev_args(CONN)
    netdev = args[args.index("-netdev") + 1]
    assert "restrict=on" in netdev.split(",")
    fwd = [p for p in netdev.split(",") if p.startswith("hostfwd=")]
    assert fwd == [f"hostfwd=tcp:127.0.0.1:{CONN[k]}-10.0.2.15:{CONN[k]}" for k in KERNEL_PORTS]
    assert args[args.index("-device") + 1] == "virtio-net-device,netdev=lab"


def test_guest_env_keeps_python_settings_and_drops_the_parent_pid() -> None:
    env = {
        "PATH": "/venv/bin:/usr/bin",
        "HOME": "/home/jovyan",
        "JPY_PARENT_PID": "123",
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYCONT_BACKEND": "vm",
        "SECRET_TOKEN": "x",
    }
    out = guest_env(env, INFO, "/home/jovyan/.local/share/pycont/images")
    assert out["PATH"] == f"{os.path.dirname(sys.executable)}:{env['PATH']}"  # our pycont first
    assert out["HOME"] == env["HOME"]
    assert "JPY_PARENT_PID" not in out  # ipykernel would exit: no such pid in the guest
    assert "PYCONT_BACKEND" not in out and "SECRET_TOKEN" not in out
    assert out["JUPYTER_PLATFORM_DIRS"] == "1"
    assert out["PYCONT_ROOT"] == GUEST_STORE
    assert out["PYCONT_LAB_HOST_IMAGES"] == "/home/jovyan/.local/share/pycont/images"
    assert json.loads(out["PYCONT_LAB_VM"])["kernel"] == INFO.kernel


def test_kernel_command_writes_the_connection_and_execs_ipykernel() -> None:
    script = kernel_command("/opt/py dir/bin/python", guest_connection(CONN))
    assert "ip addr add 10.0.2.15/24 dev eth0" in script
    assert script.splitlines()[-1] == (
        "exec '/opt/py dir/bin/python' -m ipykernel_launcher -f /run/lab/kernel.json "
        "--IPKernelApp.kernel_class=pycont.vm.coursekernel.CourseKernel"
    )
    assert '"ip": "0.0.0.0"' in script


def test_keep_paths() -> None:
    got = keep_paths(["/tmp/ci/notebooks", "/tmp/ci/.venv", "/home/j", "/run/user/1000/x", "/tmp"])
    assert got == ["/run/user", "/tmp/ci"]


def test_kernelspec_and_cli(tmp_path, capsys) -> None:
    spec = kernel_json("/venv/bin/python")
    assert spec["argv"] == [
        "/venv/bin/python",
        "-m",
        "pycont.vm.labkernel",
        "-f",
        "{connection_file}",
    ]
    assert spec["interrupt_mode"] == "message"  # reaches a kernel in the VM too
    assert main(["install", "--prefix", str(tmp_path)]) == 0
    installed = tmp_path / "share" / "jupyter" / "kernels" / "pycont"
    assert (
        json.loads((installed / "kernel.json").read_text())["display_name"] == "Python 3 (pycont)"
    )
    assert (installed / "logo-64x64.png").exists()
    assert str(installed) in capsys.readouterr().out


def test_console_filter_keeps_the_commands_output_only() -> None:
    got: list[str] = []
    out = ConsoleFilter(got.append)
    out("[    0.428137] PCI: Fatal: No config\nPYCONT-VM-UP\nPYCONT-VM-READY\nhel")
    out("lo\n[   3.1] reboot: Power down\nPYCONT-VM-EXIT 3\nno newline")
    out.flush()
    assert got == ["hello\n", "no newline"]


def test_pycont_lab_needs_a_command(capsys) -> None:
    from pycont.cli import main as cli

    assert cli(["lab"]) == 125
    assert capsys.readouterr().err == (
        "pycont: pycont lab needs a command to run in the lab VM, e.g. "
        "pycont lab pycont run --rm busybox echo hi\n"
    )


def import_build():
    src = str(Path(__file__).resolve().parents[2] / "notebooks" / "_src")
    if src not in sys.path:
        sys.path.insert(0, src)
    import build

    return build


def test_the_course_kernel_reports_what_the_chapters_are_committed_with() -> None:
    from pycont.vm.coursekernel import CourseKernel
    from pycont.vm.labkernel import KERNEL_CLASS

    build = import_build()
    assert CourseKernel.language_info == build.LANGUAGE_INFO  # no "version": nothing to differ
    assert KERNEL_CLASS.endswith("=pycont.vm.coursekernel.CourseKernel")


def test_no_vm_inside_the_lab_vm(monkeypatch) -> None:
    from pycont.vm.launch import available, boot

    monkeypatch.setenv("PYCONT_LAB_VM", json.dumps(INFO.__dict__))
    ok, why = available()
    assert not ok and why.startswith("inside pycont's lab VM: a VM in it would be emulated twice")
    with pytest.raises(VMError, match="inside pycont's lab VM"):
        boot("busybox", ["true"])  # at once: not a nested TCG boot that times out
