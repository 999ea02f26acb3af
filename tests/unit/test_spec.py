"""The run spec: docker run's options checked once, at the edge, into one frozen value."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from pycont.cgroups.base import Limits
from pycont.errors import UsageError
from pycont.runtime.spec import OPTIONS, RunSpec
from pycont.security import capabilities
from pycont.security.options import SecurityOptions
from pycont.volumes import Mount


def test_defaults() -> None:
    spec = RunSpec.from_options("busybox")
    assert spec == RunSpec("busybox")
    assert spec.command is None and spec.limits == Limits() and spec.volumes == ()
    private = {k for k, mode in spec.namespaces.items() if mode == "private"}
    # All seven private, but the user namespace as root (Docker's default).
    expected = {"pid", "net", "ipc", "uts", "mnt", "cgroup", "user"}
    assert private == (expected - {"user"} if os.geteuid() == 0 else expected)
    assert spec.security == SecurityOptions()
    assert spec.security.caps == capabilities.DOCKER_DEFAULT and spec.security.seccomp == "default"


def test_security_flags(tmp_path: Path) -> None:
    spec = RunSpec.from_options(
        "busybox",
        cap_add=["net_admin"],
        cap_drop=["CAP_CHOWN"],
        security_opt=["no-new-privileges", "seccomp=unconfined"],
        read_only=True,
    )
    sec = spec.security
    assert "CAP_NET_ADMIN" in sec.caps and "CAP_CHOWN" not in sec.caps
    assert sec.no_new_privileges and sec.seccomp == "unconfined" and sec.read_only
    assert SecurityOptions.from_json(sec.to_json()) == sec
    old_form = RunSpec.from_options("busybox", security_opt=["seccomp:unconfined"]).security
    assert old_form.seccomp == "unconfined"
    everything = RunSpec.from_options("busybox", privileged=True).security
    assert everything.privileged and everything.seccomp == "unconfined" and not everything.masked
    profile = tmp_path / "a:b.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    custom = RunSpec.from_options("busybox", security_opt=[f"seccomp={profile}"]).security
    assert custom.seccomp == {"defaultAction": "SCMP_ACT_ALLOW"}
    for bad, says in (
        ({"cap_add": ["FLY"]}, "unknown capability"),
        ({"security_opt": ["apparmor=docker-default"]}, "invalid --security-opt"),
        ({"security_opt": ["seccomp=/nonexistent.json"]}, "nonexistent.json"),
    ):
        with pytest.raises(UsageError, match=says):
            RunSpec.from_options("busybox", **bad)


def test_everything_parsed_and_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_CALLER", "yes")
    monkeypatch.delenv("UNSET_HERE", raising=False)
    spec = RunSpec.from_options(
        "busybox",
        ["sh", "-c", "true"],
        name="web",
        hostname="box",
        env=["A=1", "FROM_CALLER", "UNSET_HERE"],
        workdir="/srv",
        detach=True,
        rm=True,
        pid="host",
        network="host",
        volumes=["data:/data", f"{tmp_path}:/src:ro"],
        memory="64m",
        cpus=0.5,
        narrate=True,
    )
    assert spec.command == ("sh", "-c", "true")
    assert spec.env == ("A=1", "FROM_CALLER=yes")  # -e KEY: the caller's value, or nothing
    assert spec.namespaces["pid"] == "host" and spec.namespaces["net"] == "host"
    # Docker's default: no user namespace as root (rootless needs one).
    assert spec.namespaces["user"] == ("host" if os.geteuid() == 0 else "private")
    assert spec.volumes == (
        Mount("volume", "data", "/data"),
        Mount("bind", str(tmp_path), "/src", readonly=True),
    )
    assert spec.limits.memory == 64 << 20 and spec.limits.nano_cpus == 500_000_000
    assert spec.detach and spec.rm and spec.narrate and not spec.interactive
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]


def test_an_unknown_option_lists_the_accepted_ones() -> None:
    with pytest.raises(UsageError) as info:
        RunSpec.from_options("busybox", memroy="64m")
    msg = str(info.value)
    assert "unknown option 'memroy'" in msg
    assert all(o in msg for o in OPTIONS)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "-web"}, "invalid container name '-web'"),
        ({"hostname": "a_b"}, "invalid hostname 'a_b'"),
        ({"workdir": "srv"}, "invalid working directory 'srv'"),
        ({"env": ["=1"]}, "invalid environment variable '=1'"),
        ({"volumes": ["data:/x", "other:/x/"]}, "duplicate mount point"),
        ({"volumes": ["data"]}, "invalid volume 'data'"),
        ({"pid": "shared"}, "shared"),
        ({"memory": "lots"}, "lots"),
    ],
)
def test_bad_values_are_refused_naming_the_value(options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        RunSpec.from_options("busybox", **options)
