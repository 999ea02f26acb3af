"""pycont's exception tree: docker's exit codes, one-line messages, errno kept for syscalls."""

from __future__ import annotations

import errno

import pytest

import pycont
from pycont.errors import (
    CommandNotExecutable,
    CommandNotFound,
    ContainerNotFound,
    ImageNotFound,
    InvalidState,
    KernelError,
    NameConflict,
    PycontError,
    StartError,
    Unsupported,
    UsageError,
)


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (UsageError("bad flag"), 125),
        (ImageNotFound("no image"), 125),
        (ContainerNotFound("no container"), 125),
        (NameConflict("taken"), 125),
        (InvalidState("stopped"), 125),
        (StartError("could not start"), 125),
        (StartError("shim died", 137), 137),
        (CommandNotFound('exec: "nope": executable file not found in $PATH'), 127),
        (CommandNotExecutable('exec: "/etc": permission denied'), 126),
        (KernelError("unshare(CLONE_NEWUSER)", errno.EPERM), 125),
    ],
)
def test_exit_codes_are_dockers(err: PycontError, code: int) -> None:
    assert isinstance(err, PycontError)
    assert err.exit_code == code


def test_the_tree() -> None:
    assert issubclass(CommandNotFound, StartError)
    assert issubclass(CommandNotExecutable, StartError)
    assert issubclass(KernelError, OSError)
    assert issubclass(Unsupported, KernelError)
    for name in pycont.__all__:
        value = getattr(pycont, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, PycontError), name


def test_kernel_error_names_the_operation_the_object_and_errno() -> None:
    err = KernelError("mount overlay pycont-overlay on", errno.EPERM, "/var/lib/pycont/x/merged")
    assert str(err) == (
        "mount overlay pycont-overlay on /var/lib/pycont/x/merged: Operation not permitted [EPERM]"
    )
    assert err.errno == errno.EPERM
    assert err.filename == "/var/lib/pycont/x/merged"
    assert err.op == "mount overlay pycont-overlay on"


def test_kernel_error_without_object_and_with_detail() -> None:
    err = Unsupported("unshare(CLONE_NEWUSER)", errno.ENOSPC, detail="max_user_namespaces is 0")
    assert str(err) == (
        "unshare(CLONE_NEWUSER): No space left on device [ENOSPC] (max_user_namespaces is 0)"
    )
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC


def test_kernel_error_can_be_caught_as_oserror() -> None:
    with pytest.raises(OSError) as info:
        raise KernelError("pivot_root", errno.EINVAL, "/x")
    assert info.value.errno == errno.EINVAL


@pytest.mark.parametrize(
    "err",
    [
        UsageError("invalid container name '!'"),
        CommandNotFound('exec: "nope": executable file not found in $PATH'),
        KernelError("setns(CLONE_NEWPID)", errno.EPERM, "/proc/1/ns/pid"),
    ],
)
def test_messages_are_one_line_and_ipython_shows_no_traceback(err: PycontError) -> None:
    assert "\n" not in str(err)
    rendered = err._render_traceback_()
    assert rendered == [f"{type(err).__name__}: {err}"]
