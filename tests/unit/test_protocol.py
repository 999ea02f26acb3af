"""The shim's messages to its caller: each typed message survives its line of JSON."""

from __future__ import annotations

import pytest

from pycont.runtime import protocol
from pycont.runtime.protocol import Exited, Failed, Narration, Started


@pytest.mark.parametrize(
    "msg",
    [
        Narration('mount("proc", "$CONTAINER/merged/proc", "proc", 0, NULL) = 0'),
        Started(4242),
        Failed("notfound", 127, 'exec: "nope": executable file not found in $PATH'),
        Exited(137, oom_killed=True),
        Exited(0),
    ],
)
def test_round_trip(msg: protocol.Message) -> None:
    raw = protocol.encode(msg)
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1  # one line each, even with newlines
    assert protocol.decode(raw) == msg


def test_a_line_break_inside_a_message_stays_inside_its_line() -> None:
    raw = protocol.encode(Failed("setup", 125, "two\nlines"))
    assert raw.count(b"\n") == 1
    assert protocol.decode(raw) == Failed("setup", 125, "two\nlines")


@pytest.mark.parametrize("raw", [b'{"started": 12}', b"[1, 2]", b'{"type": "bogus"}'])
def test_what_is_not_a_message_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a message"):
        protocol.decode(raw)
