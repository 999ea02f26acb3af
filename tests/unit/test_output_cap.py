"""The output cap's arithmetic (pycont.runtime.output): what is kept, shown and counted."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

import pytest

from pycont.runtime.output import OutputCap, read_capped


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):  # the writer's end is closed by write_all
            os.close(fd)


def write_all(w: int, data: bytes) -> None:
    """Write and close from a thread: more than a pipe holds (64 KiB) blocks until read."""

    def write() -> None:
        with os.fdopen(w, "wb") as f:
            f.write(data)

    threading.Thread(target=write, daemon=True).start()


def test_the_head_is_kept_the_tail_refreshed_and_the_rest_counted() -> None:
    cap = OutputCap(b"", head=5, tail=3)
    kept = b"".join(cap.feed(c) for c in (b"abc", b"defgh", b"ijklmn"))
    assert (kept, cap.tail, cap.total, cap.dropped) == (b"abcde", b"lmn", 14, 6)
    assert "6 more bytes (6B) were not kept (max 5); the last 3:" in cap.notice("kept", "max 5")


def test_nothing_is_dropped_while_head_and_tail_hold_it_all() -> None:
    cap = OutputCap("", head=5, tail=3)
    assert cap.feed("abcdefg") == "abcde"
    assert (cap.tail, cap.dropped) == ("fg", 0)


def test_read_capped_without_a_cap_keeps_everything(pipe: tuple[int, int]) -> None:
    r, w = pipe
    write_all(w, "é".encode() * 40000)
    with os.fdopen(os.dup(r), "rb") as f:
        assert read_capped(f, None) == ("é" * 40000, False)


def test_read_capped_cuts_between_whole_characters_where_it_can(pipe: tuple[int, int]) -> None:
    r, w = pipe
    write_all(w, "é".encode() * 30000)  # 60000 bytes
    with os.fdopen(os.dup(r), "rb") as f:
        text, timed_out = read_capped(f, 10000)
    head, notice, rest = text.partition("\n[pycont] output throttled: ")
    assert not timed_out and notice
    assert head == "é" * 2952  # 10000 - 4096 bytes = 5904: whole characters
    assert rest.startswith("50,000 more bytes (50kB) were not kept (max_output=10,000)")
    assert rest.endswith("é" * 2048)


def test_a_small_output_under_the_cap_is_whole(pipe: tuple[int, int]) -> None:
    r, w = pipe
    write_all(w, b"x" * 7000)  # more than the head (cap - tail), less than the cap
    with os.fdopen(os.dup(r), "rb") as f:
        assert read_capped(f, 8192) == ("x" * 7000, False)


def test_read_capped_returns_at_the_deadline_with_what_it_read(pipe: tuple[int, int]) -> None:
    r, w = pipe
    os.write(w, b"so far")  # the writer stays open: no EOF ever comes
    with os.fdopen(os.dup(r), "rb") as f:
        assert read_capped(f, 100, deadline=time.monotonic() + 0.2) == ("so far", True)


def test_a_negative_cap_is_refused(pipe: tuple[int, int]) -> None:
    with os.fdopen(os.dup(pipe[0]), "rb") as f, pytest.raises(ValueError, match="max_output=-1"):
        read_capped(f, -1)


def test_a_cap_without_a_tail_keeps_the_head_only() -> None:
    cap = OutputCap(b"", head=1, tail=0)
    kept = cap.feed(b"abc") + cap.feed(b"def")
    assert (kept, cap.tail, cap.dropped) == (b"a", b"", 5)  # x[-0:] would be all of x


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), -1, 1e300, "5", True])
def test_a_timeout_is_a_finite_number_of_seconds(timeout: object) -> None:
    from pycont.errors import UsageError
    from pycont.runtime.api import _check_run_limits

    with pytest.raises(UsageError, match="expected seconds >= 0, or None"):
        _check_run_limits(timeout, None)  # type: ignore[arg-type]
