"""docker's ``--user`` on the real kernel: the ids, groups, HOME and capabilities a container's
command gets, read from /proc/self/status inside, and what the kernel then refuses it.

The names resolve in the container's own /etc/passwd and /etc/group: busybox's (root and
nobody), and those of an image committed here with a user ``app`` (uid 1000) in two groups.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import pycont
from pycont.errors import StartError
from pycont.security import capabilities
from tests.helpers import cgroup_dirs, cli, container_ids, mountinfo_lines, requires

# The rootless fixture: uid 1000 on the host runs pycont through a user namespace.
from tests.integration.test_rootless import (  # noqa: F401
    Rootless,
    rootless,
    skip_if_the_kernel_refused,
)

pytestmark = requires("root", "overlay")

IMAGE = "pc-h3-users:1"
DOCKER_CAPS = f"{capabilities.to_mask(capabilities.DOCKER_DEFAULT):016x}"
STATUS = "grep -E '^(Uid|Gid|Groups|CapPrm|CapEff|CapBnd):' /proc/self/status"


def sh(script: str, **options: Any) -> str:
    """Run a shell script in ``image`` (busybox by default); its output, or fail."""
    image = str(options.pop("image", "busybox"))
    c = pycont.run(image, ["sh", "-c", script], rm=True, timeout=30, **options)
    assert c.exit_code == 0, c.output
    return c.output


def status(**options: Any) -> dict[str, list[str]]:
    """/proc/self/status's ids and capability sets of the container's command."""
    out = {}
    for line in sh(STATUS, **options).splitlines():
        key, _, value = line.partition(":")
        out[key] = value.split()
    return out


@pytest.fixture(scope="module")
def users_image() -> Iterator[str]:
    """busybox plus user ``app`` (1000:1000, HOME /home/app) in groups wheel (10) and audio
    (29), and USER app in its config, made with docker commit."""
    script = (
        "echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && "
        "printf 'app:x:1000:\\nwheel:x:10:root,app\\naudio:x:29:app\\n' >> /etc/group && "
        "mkdir -p /home/app && chown 1000:1000 /home/app"
    )
    c = pycont.run("busybox", ["sh", "-c", script], name="pc-h3-mkimage", timeout=30)
    try:
        assert c.exit_code == 0, c.output
        c.commit(IMAGE, changes=["USER app"])
    finally:
        c.remove(force=True)
    yield IMAGE
    cli("rmi", "-f", IMAGE)


def run_in(c: pycont.Container, command: Sequence[str], **options: Any) -> pycont.ExecResult:
    """docker exec, waited for: the code and the output."""
    res = c.exec(command, **options)
    assert isinstance(res, pycont.ExecResult)
    return res


# -- ids -----------------------------------------------------------------------------------
def test_a_uid_with_no_passwd_entry_gets_gid_0() -> None:
    assert sh("id", user="1000") == "uid=1000 gid=0(root)\n"
    s = status(user="1000")
    assert s["Uid"] == ["1000"] * 4 and s["Gid"] == ["0"] * 4
    assert s["Groups"] == []  # setgroups(2): none of the host's supplementary groups


def test_uid_and_gid() -> None:
    assert sh("id", user="1000:1000") == "uid=1000 gid=1000\n"


def test_a_name_resolves_in_the_images_passwd() -> None:
    # busybox's /etc/passwd: nobody:x:65534:65534:nobody:/nonexistent:/bin/false
    out = sh("id; echo $HOME", user="nobody")
    assert out == "uid=65534(nobody) gid=65534(nobody)\n/nonexistent\n"


def test_the_cli_flag() -> None:
    r = cli("run", "--rm", "-u", "1000:1000", "busybox", "id")
    assert (r.returncode, r.stdout, r.stderr) == (0, "uid=1000 gid=1000\n", "")
    r = cli("run", "--rm", "--user", "nobody", "busybox", "id", "-un")
    assert (r.returncode, r.stdout) == (0, "nobody\n")


def test_the_images_user_is_the_default_and_u_overrides_it(users_image: str) -> None:
    s = status(image=users_image)
    assert s["Uid"] == ["1000"] * 4 and s["Gid"] == ["1000"] * 4
    assert sorted(s["Groups"], key=int) == ["10", "29"]  # memberships in its /etc/group
    assert sh("echo $HOME", image=users_image) == "/home/app\n"
    assert sh("id -u; echo $HOME", image=users_image, user="root") == "0\n/root\n"
    # an explicit group replaces the memberships, as docker does
    assert status(image=users_image, user="app:audio")["Groups"] == []
    assert sh("id -g", image=users_image, user="app:audio") == "29\n"
    # HOME given by the user stays
    assert sh("echo $HOME", image=users_image, env=["HOME=/tmp"]) == "/tmp\n"


def test_inspect_shows_the_user(users_image: str) -> None:
    c = pycont.create("busybox", ["id"], name="pc-h3-inspect", user="1000:1000")
    d = pycont.create(users_image, ["id"], name="pc-h3-inspect2")
    assert c.inspect()["Config"]["User"] == "1000:1000"
    assert d.inspect()["Config"]["User"] == "app"
    r = cli("inspect", "-f", "{{.Config.User}}", "pc-h3-inspect")
    assert r.stdout == "1000:1000\n"
    assert pycont.create("busybox", ["id"]).inspect()["Config"]["User"] == ""


# -- what a non-root user can do -----------------------------------------------------------
def test_a_non_root_user_has_no_capabilities() -> None:
    s = status(user="1000")
    assert s["CapEff"] == ["0" * 16] and s["CapPrm"] == ["0" * 16]
    assert s["CapBnd"] == [DOCKER_CAPS]  # the ceiling is still docker's 14
    assert status(user="root")["CapEff"] == [DOCKER_CAPS]  # -u root keeps root's
    assert status(user="0:1000")["CapEff"] == [DOCKER_CAPS]


def test_a_non_root_user_cannot_write_a_root_owned_0755_dir() -> None:
    script = "stat -c '%u %a' /etc; touch /etc/pc-h3 2>&1; echo rc=$?"
    c = pycont.run("busybox", ["sh", "-c", script], rm=True, timeout=30, user="1000")
    assert c.output.splitlines() == [
        "0 755",
        "touch: /etc/pc-h3: Permission denied",
        "rc=1",
    ]
    assert sh("touch /etc/pc-h3; echo rc=$?", user="0") == "rc=0\n"


def test_the_switch_works_when_setuid_is_dropped_and_the_bounding_set_stays_cut() -> None:
    s = status(user="1000", cap_drop=["SETUID", "SETPCAP"])
    assert s["Uid"] == ["1000"] * 4
    kept = capabilities.DOCKER_DEFAULT - {"CAP_SETUID", "CAP_SETPCAP"}
    assert s["CapBnd"] == [f"{capabilities.to_mask(kept):016x}"]
    # uid 0 with another gid keeps root's capabilities, but not SETGID it dropped
    s = status(user="0:1000", cap_drop=["SETGID"])
    assert s["Gid"] == ["1000"] * 4
    no_setgid = f"{capabilities.to_mask(capabilities.DOCKER_DEFAULT - {'CAP_SETGID'}):016x}"
    assert s["CapEff"] == s["CapBnd"] == [no_setgid]


def test_privileged_non_root_still_has_no_effective_capabilities() -> None:
    s = status(user="1000", privileged=True)
    assert s["CapEff"] == ["0" * 16] and s["CapPrm"] == ["0" * 16]


# -- unknown names -------------------------------------------------------------------------
MESSAGE = "unable to find user pc-h3-ghost: no matching entries in passwd file"


def test_an_unknown_name_fails_the_start_with_one_line() -> None:
    before = container_ids()
    r = cli("run", "--rm", "-u", "pc-h3-ghost", "busybox", "id")
    assert (r.returncode, r.stdout, r.stderr) == (125, "", f"pycont: {MESSAGE}\n")
    assert container_ids() == before
    r = cli("run", "--rm", "-u", "app:pc-h3-ghosts", "busybox", "id")
    assert r.returncode == 125
    assert r.stderr == "pycont: unable to find user app: no matching entries in passwd file\n"


@pytest.mark.parametrize("rm", [True, False])
def test_an_unknown_name_leaves_nothing_behind(rm: bool) -> None:
    c = pycont.create("busybox", ["id"], user="pc-h3-ghost", rm=rm)
    with pytest.raises(StartError) as info:
        c.start()
    assert str(info.value) == MESSAGE and info.value.exit_code == 125
    assert cgroup_dirs(c.id) == []
    assert mountinfo_lines(c.id) == []
    if rm:
        assert c.id not in container_ids()
    else:  # kept as exited, as for any start that failed: docker keeps it too
        rec = c.state()
        assert (rec.status, rec.exit_code, rec.error) == ("exited", 125, MESSAGE)
        c.remove()


def test_a_bad_spec_is_refused_before_anything_is_made() -> None:
    before = container_ids()
    r = cli("run", "--rm", "-u", "a:b:c", "busybox", "id")
    assert r.returncode == 125 and r.stderr.count("\n") == 1
    assert "invalid user 'a:b:c'" in r.stderr
    assert container_ids() == before


# -- exec ------------------------------------------------------------------------------------
def test_exec_as_another_user(users_image: str) -> None:
    c = pycont.run("busybox", ["sleep", "1000"], detach=True, name="pc-h3-exec")
    res = run_in(c, ["id"], user="1000:1000")
    assert (res.exit_code, res.output) == (0, "uid=1000 gid=1000\n")
    res = run_in(c, ["sh", "-c", "id -u; grep CapEff /proc/self/status"], user="nobody")
    assert res.output.split() == ["65534", "CapEff:", "0" * 16]
    assert run_in(c, ["id", "-u"]).output == "0\n"  # the container's user: root
    with pytest.raises(StartError, match=re.escape(MESSAGE)):
        c.exec(["id"], user="pc-h3-ghost")
    # a container made with a user execs as that user by default, -u overrides
    d = pycont.run(users_image, ["sleep", "1000"], detach=True, name="pc-h3-exec2")
    assert run_in(d, ["sh", "-c", "id -u; echo $HOME"]).output == "1000\n/home/app\n"
    assert run_in(d, ["id", "-u"], user="root").output == "0\n"


# -- rootless ------------------------------------------------------------------------------
@requires("root", "userns", "overlay")
def test_rootless_maps_only_root(rootless: Rootless) -> None:  # noqa: F811
    r = rootless.cli("run", "--rm", "-u", "root", "busybox", "id", "-u")
    skip_if_the_kernel_refused(r)
    assert (r.returncode, r.stdout) == (0, "0\n"), r.stderr
    r = rootless.cli("run", "--rm", "-u", "1000", "busybox", "id")
    assert r.returncode == 125
    assert r.stderr == (
        "pycont: --user 1000 needs a user namespace that maps it: rootless pycont maps only uid 0\n"
    )
    assert rootless.containers() == []


def test_config_json_keeps_the_user() -> None:
    c = pycont.create("busybox", ["id"], user="nobody", name="pc-h3-config")
    with open(os.path.join(c.dir, "config.json")) as f:
        assert json.load(f)["user"] == "nobody"
