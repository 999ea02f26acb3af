"""The thin client's pure parts: when it keeps a command to itself (the terminal heuristic, the
switches), the request's encoding, the server folder's safety check and the server key."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from pycont import client
from pycont.cliworker import parse_body


@pytest.mark.parametrize(
    "args",
    [
        ["run", "-i", "busybox", "cat"],
        ["run", "-it", "busybox", "sh"],
        ["run", "-ti", "busybox", "sh"],
        ["run", "-dit", "busybox", "sh"],
        ["run", "--rm", "-t", "busybox"],
        ["exec", "--interactive", "c1", "sh"],
        ["exec", "--tty", "c1", "sh"],
        ["exec", "--tty=true", "c1", "sh"],
        ["run", "--rm", "-ti", "busybox", "--", "x"],
    ],
)
def test_terminal_flags_are_seen(args: list[str]) -> None:
    assert client.wants_terminal(args)
    assert client.use_direct(args, {}, stdin_tty=True)
    assert not client.use_direct(args, {}, stdin_tty=False)  # a pipe: no job control at stake


@pytest.mark.parametrize(
    "args",
    [
        ["ps", "-a"],
        ["run", "--rm", "-d", "busybox", "sleep", "1"],
        ["run", "--rm", "busybox", "--", "-it"],  # after "--": the container's arguments
        ["logs", "-f", "c1"],
        ["run", "-e", "A=-it", "busybox"],
        ["images", "-q"],
        ["run", "-v", "/a:/b", "--name", "x", "busybox"],
    ],
)
def test_other_commands_go_to_the_server(args: list[str]) -> None:
    assert not client.wants_terminal(args)
    assert not client.use_direct(args, {}, stdin_tty=True)


@pytest.mark.parametrize(
    ("args", "direct"),
    [
        (["run", "--rm", "busybox", "true"], True),
        (["exec", "c1", "ls"], True),
        (["compose", "up"], True),
        (["ps", "-a"], False),
        (["logs", "-f", "c1"], False),
        (["rm", "-f", "c1"], False),
        ([], False),
    ],
)
def test_a_controlling_terminal_keeps_attaching_verbs(args: list[str], direct: bool) -> None:
    assert client.use_direct(args, {}, stdin_tty=False, terminal=True) is direct
    assert client.use_direct(args, {}, stdin_tty=False, terminal=False) is False


def test_glibc_signals_are_never_passed_on() -> None:
    import signal

    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        ignored, blocked = client._signal_state()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert signal.SIGUSR1 in blocked
    assert not {32, 33} & {*ignored, *blocked}


def test_switch_and_failpoints_mean_direct() -> None:
    assert client.use_direct(["ps"], {client.ENV_SWITCH: "0"}, stdin_tty=False)
    assert client.use_direct(["ps"], {"PYCONT_FAILPOINTS": "rm.renamed=kill"}, stdin_tty=False)
    assert client.use_direct(["ps"], {"PYCONT_FAILPOINTS_LOG": "/x"}, stdin_tty=False)
    assert not client.use_direct(["ps"], {client.ENV_SWITCH: "1"}, stdin_tty=False)


def test_request_body_round_trip() -> None:
    argv = ["/x/pycont", "run", "", "-e", "A=b=c", "caf\u00e9", "\udcff"]
    env = {b"A": b"1", b"EMPTY": b"", b"EQ": b"x=y", b"RAW": b"\xff\xfe"}
    got_argv, got_env, ignored, blocked = parse_body(client.request_body(argv, env))
    assert (got_argv, got_env) == (argv, env)
    assert ignored == sorted(ignored) and all(0 < s < 65 for s in ignored + blocked)


def test_a_truncated_body_is_refused() -> None:
    body = client.request_body(["p", "ps"], {b"A": b"1", b"B": b"2"})
    with pytest.raises((ValueError, IndexError)):
        parse_body(body[: body.index(b"B=")])


def test_folder_safety(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir(mode=0o700)
    os.chmod(good, 0o700)
    assert client.dir_is_safe(str(good))
    os.chmod(good, 0o750)
    assert not client.dir_is_safe(str(good))
    link = tmp_path / "link"
    os.chmod(good, 0o700)
    link.symlink_to(good)
    assert not client.dir_is_safe(str(link))  # lstat: a link is not the folder
    assert not client.dir_is_safe(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("")
    os.chmod(tmp_path / "file", 0o700)
    assert not client.dir_is_safe(str(tmp_path / "file"))


def test_server_folder_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(client.ENV_DIR, "/somewhere")
    assert client.server_dir() == "/somewhere"
    monkeypatch.delenv(client.ENV_DIR)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert client.server_dir() == "/run/pycont/cli"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert client.server_dir() == "/run/user/1000/pycont"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert client.server_dir() == "/tmp/pycont-1000"


def test_newest_mtime_follows_edits_and_new_files(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    shutil.copytree(os.path.dirname(client.__file__), pkg, ignore=shutil.ignore_patterns("*.pyc"))
    assert client.newest_mtime(str(pkg)) <= time.time_ns()
    future = time.time_ns() + 10**10
    os.utime(pkg / "cli" / "system.py", ns=(future, future))
    assert client.newest_mtime(str(pkg)) == future
    later = future + 10**9
    (pkg / "cli" / "new.py").write_text("")
    os.utime(pkg / "cli", ns=(later, later))
    assert client.newest_mtime(str(pkg)) == later
    pyc = pkg / "__pycache__" / "x.pyc"
    pyc.parent.mkdir(exist_ok=True)
    pyc.write_text("")
    os.utime(pyc.parent, ns=(later + 10**9, later + 10**9))
    assert client.newest_mtime(str(pkg)) == later  # bytecode caches do not count


def test_the_key_is_short_and_stable() -> None:
    key = client.server_key()
    assert key == client.server_key() and len(key) == 12 and int(key, 16) >= 0
    assert client.socket_name(key) == f"cli-{key}.sock"
