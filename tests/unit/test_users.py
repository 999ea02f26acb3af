"""docker's ``--user``: parsing, resolution in passwd/group text, the config and the flag.

Pure logic, no root: the files are strings or a tree in tmp_path; the real switch of ids is
tests/integration/test_user.py's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pycont.cli import build_parser, run_options
from pycont.errors import UsageError
from pycont.runtime import state as st
from pycont.runtime import users
from pycont.runtime.spec import OPTIONS, RunSpec

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment, then a blank line and a broken one

broken:x:notanumber:0::/:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
www:x:33:33:www-data:/var/www:/usr/sbin/nologin
app:x:1000:1000::/home/app:/bin/sh
2000:x:3000:3000:a user whose name is digits:/home/n:/bin/sh
nohome:x:1001:1001:::/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
GROUP = """\
root:x:0:
daemon:x:1:
www:x:33:
app:x:1000:
wheel:x:10:root,app
audio:x:29:app, www
video:x:44:app
2000:x:5000:
"""


def resolve(user: str) -> users.Identity:
    return users.resolve(user, users.parse_passwd(PASSWD), users.parse_group(GROUP))


# -- parsing -------------------------------------------------------------------------------
def test_passwd_and_group_lines() -> None:
    p = {e.name: e for e in users.parse_passwd(PASSWD)}
    assert "broken" not in p  # a uid that is no number is skipped, as libc does
    assert p["www"] == users.PasswdEntry("www", 33, 33, "/var/www")
    g = {e.name: e for e in users.parse_group(GROUP)}
    assert g["wheel"].members == ("root", "app")
    assert g["audio"].members == ("app", "www")  # blanks around members are not part of names
    assert g["root"].members == ()


@pytest.mark.parametrize("spec", ["1000", "app", "1000:1000", "app:video", ":10", "0", "a.b-c_d"])
def test_valid_specs(spec: str) -> None:
    users.validate(spec)


@pytest.mark.parametrize("spec", ["", ":", "a:", "a b", "a:b:c", "2147483648", "1:2147483648"])
def test_invalid_specs(spec: str) -> None:
    with pytest.raises(UsageError) as info:
        users.validate(spec)
    assert "\n" not in str(info.value)
    assert "name|uid[:group|gid]" in str(info.value) or "0-2147483647" in str(info.value)


# -- docker's rules ------------------------------------------------------------------------
def test_a_name_takes_uid_gid_home_and_memberships_from_the_files() -> None:
    assert resolve("app") == users.Identity(1000, 1000, (10, 29, 44), "/home/app")
    assert resolve("www") == users.Identity(33, 33, (29,), "/var/www")


def test_a_uid_in_passwd_is_that_entry() -> None:
    assert resolve("1000") == resolve("app")


def test_a_number_is_always_a_uid_never_a_name() -> None:
    # user "2000" has uid 3000; -u 2000 is uid 2000, which has no entry
    assert resolve("2000") == users.Identity(2000, 0, (), "/")


def test_a_uid_without_entry_gets_gid_0_and_home_slash() -> None:
    assert resolve("4242") == users.Identity(4242, 0, (), "/")
    assert resolve("4242:4242") == users.Identity(4242, 4242, (), "/")


def test_an_explicit_group_replaces_primary_and_supplementary_groups() -> None:
    assert resolve("app:video") == users.Identity(1000, 44, (), "/home/app")
    assert resolve("app:7") == users.Identity(1000, 7, (), "/home/app")
    # group "2000" has gid 5000; a number is always a gid
    assert resolve("nobody:2000") == users.Identity(65534, 2000, (), "/nonexistent")


def test_a_group_name_is_looked_up_and_a_numeric_group_is_a_gid() -> None:
    assert resolve("4242:wheel").gid == 10
    assert resolve(":audio") == users.Identity(0, 29, (), "/")


def test_an_empty_home_is_slash() -> None:
    assert resolve("nohome").home == "/"


def test_root() -> None:
    assert resolve("root") == users.Identity(0, 0, (10,), "/root")
    assert resolve("0").is_root and not resolve("1000").is_root


def test_unknown_names_give_dockers_one_line_errors() -> None:
    with pytest.raises(
        UsageError, match=r"^unable to find user ghost: no matching entries in passwd file$"
    ):
        resolve("ghost")
    with pytest.raises(
        UsageError, match=r"^unable to find group ghosts: no matching entries in group file$"
    ):
        resolve("app:ghosts")


def test_no_passwd_file_allows_only_numbers(tmp_path: Path) -> None:
    assert users.lookup("1000", root=str(tmp_path)) == users.Identity(1000, 0, (), "/")
    with pytest.raises(UsageError, match="unable to find user nobody"):
        users.lookup("nobody", root=str(tmp_path))


def test_lookup_reads_the_given_root_not_the_hosts(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD.replace("app:x:1000", "app:x:1234"))
    (tmp_path / "etc" / "group").write_text(GROUP)
    assert users.lookup("app", root=str(tmp_path)).uid == 1234


# -- the user namespace --------------------------------------------------------------------
IDENTITY_MAP = [[0, 0, 4294967295]]
ROOTLESS_MAP = [[0, 1000, 1]]


def test_every_id_is_mapped_by_the_identity_map() -> None:
    users.check_mapped("app", resolve("app"), IDENTITY_MAP, IDENTITY_MAP, rootless=False)


def test_rootless_maps_only_root() -> None:
    users.check_mapped("root", resolve("root"), ROOTLESS_MAP, ROOTLESS_MAP, rootless=True)
    with pytest.raises(UsageError) as info:
        users.check_mapped("1000", resolve("1000"), ROOTLESS_MAP, ROOTLESS_MAP, rootless=True)
    assert str(info.value) == (
        "--user 1000 needs a user namespace that maps it: rootless pycont maps only uid 0"
    )
    with pytest.raises(UsageError, match="maps only gid 0"):
        users.check_mapped("0:5", resolve("0:5"), ROOTLESS_MAP, ROOTLESS_MAP, rootless=True)


def test_an_unmapped_supplementary_group_is_named() -> None:
    with pytest.raises(UsageError, match=r"gid 44 is not mapped"):
        users.check_mapped(
            "app", resolve("app"), [[0, 0, 65536]], [[0, 0, 30], [1000, 1000, 1]], rootless=False
        )


# -- the faces: spec, config, CLI ----------------------------------------------------------
def test_the_api_accepts_user() -> None:
    assert "user" in OPTIONS
    assert RunSpec.from_options("busybox", user="1000:1000").user == "1000:1000"
    assert RunSpec.from_options("busybox", user=0).user == "0"  # an int is a uid, 0 too
    assert RunSpec.from_options("busybox").user == ""
    with pytest.raises(UsageError, match="invalid user"):
        RunSpec.from_options("busybox", user="a b")


def _config(**extra: object) -> st.ContainerConfig:
    return st.ContainerConfig(
        id="ef" * 32,
        name="u",
        image="busybox:latest",
        layers=["/l"],
        args=["id"],
        env=[],
        workdir="/",
        hostname="u",
        namespaces={},
        **extra,  # type: ignore[arg-type]
    )


def test_config_keeps_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONT_ROOT", str(tmp_path))
    cfg = _config(user="www:33")
    cdir = st.container_dir(cfg.id)
    os.makedirs(cdir)
    st.save_config(cfg)
    with open(os.path.join(cdir, "config.json")) as f:
        assert json.load(f)["user"] == "www:33"
    assert st.load_config(cdir).user == "www:33"


def test_a_config_written_before_user_existed_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYCONT_ROOT", str(tmp_path))
    cfg = _config()
    cdir = st.container_dir(cfg.id)
    os.makedirs(cdir)
    st.save_config(cfg)
    path = os.path.join(cdir, "config.json")
    with open(path) as f:
        doc = json.load(f)
    del doc["user"]
    with open(path, "w") as f:
        json.dump(doc, f)
    assert st.load_config(cdir).user == ""


@pytest.mark.parametrize("flag", ["-u", "--user"])
def test_the_run_flag(flag: str) -> None:
    a = build_parser().parse_args(["run", flag, "1000:1000", "busybox", "id"])
    assert a.user == "1000:1000"
    assert run_options(a)["user"] == "1000:1000"
    assert run_options(build_parser().parse_args(["run", "busybox"]))["user"] is None
