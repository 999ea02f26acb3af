"""Property-based tests (hypothesis) of the parsers a user's text or a file on disk reaches.

Each parser has one contract: a value, or its documented error (a UsageError of one line
saying what was wrong and what is accepted); never a traceback from inside. Where a parser
has an inverse (a reference's str(), format_bytes, format_cpus), the round trip holds. The
Dockerfile's are in test_fuzz_dockerfile.py; bounds and longer runs: tests/fuzz.py.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from pycont.cgroups import units
from pycont.errors import UsageError
from pycont.images.reference import Reference
from pycont.net import ports
from tests.fuzz import FUZZ, biased_text, one_line

# ---- image references ---------------------------------------------------------------------

_alnum = st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)
_component = st.builds(
    lambda parts, seps: parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=False)),
    st.lists(_alnum, min_size=1, max_size=3),
    st.lists(st.sampled_from([".", "_", "__", "-", "--"]), min_size=2, max_size=2),
)
_registry = st.one_of(
    st.none(),
    st.sampled_from(["localhost", "localhost:5000", "docker.io", "index.docker.io", "ghcr.io"]),
    st.from_regex(r"[a-zA-Z0-9]{1,5}\.[a-z]{2,3}(:[0-9]{1,5})?", fullmatch=True),
)
_tag = st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True))
_digest = st.one_of(st.none(), st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True))


@st.composite
def references(draw: st.DrawFn) -> str:
    path = "/".join(draw(st.lists(_component, min_size=1, max_size=3)))
    registry, tag, digest = draw(_registry), draw(_tag), draw(_digest)
    text = f"{registry}/{path}" if registry else path
    return text + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


@FUZZ
@given(biased_text("ABCDEFabcdef#%"))
@example("busybox\n")  # the message quoted it raw: two lines
@example("a" * 240)  # short enough as typed, not as docker.io/library/aaa...: docker refuses it
def test_reference_parse_raises_only_usage_errors(text: str) -> None:
    try:
        ref = Reference.parse(text)
    except UsageError as err:
        one_line(err)
        return
    assert Reference.parse(str(ref)) == ref
    assert Reference.parse(ref.canonical) == ref


@FUZZ
@given(references())
@example("docker.io/0.0/app")  # printed as 0.0/app, which names registry 0.0
@example("docker.io/localhost/app:1")
def test_reference_round_trips_through_its_forms(text: str) -> None:
    try:
        ref = Reference.parse(text)
    except UsageError as err:  # a generated name can still be too long, or a hex id
        one_line(err)
        assume(False)
        return
    assert Reference.parse(str(ref)) == ref
    assert Reference.parse(ref.canonical) == ref
    assert ref.tag is not None or ref.digest is not None


# ---- sizes, CPUs, pids, weights ---------------------------------------------------------------

_UNIT_PARSERS = [
    lambda t: units.parse_bytes("--memory", t),
    lambda t: units.parse_memory("--memory", t),
    units.parse_memory_swap,
    lambda t: units.parse_cpus(t, ncpu=4),
    units.parse_cpu_shares,
    lambda t: units.parse_cpuset(t, ncpu=4),
    units.parse_pids_limit,
    units.parse_blkio_weight,
    lambda t: units.parse_device_rate("--device-read-bps", t, stat=_no_device),
]


def _no_device(path: str) -> os.stat_result:
    raise FileNotFoundError(2, "No such file or directory", path)


@FUZZ
@given(st.sampled_from(range(len(_UNIT_PARSERS))), biased_text(" eE+"))
@example(0, "9" * 5000)  # int() refuses more than 4300 digits: a ValueError, not a UsageError
@example(0, "1." + "9" * 5000 + "k")
@example(0, "0" * 5000 + "64m")
@example(3, "0" * 5000 + "1")
def test_unit_parsers_raise_only_usage_errors(which: int, text: str) -> None:
    try:
        value = _UNIT_PARSERS[which](text)
    except UsageError as err:
        one_line(err)
        return
    if isinstance(value, int):
        assert value >= -1


@FUZZ
@given(st.integers(min_value=0, max_value=8191 << 50))  # 4 digits: 8191.5PiB would print 8192
def test_format_bytes_parses_back_to_about_the_same_size(n: int) -> None:
    text = units.format_bytes(n)
    back = units.parse_bytes("--memory", text)
    assert abs(back - n) <= max(1, n // 1000), f"{n} -> {text} -> {back}"


@FUZZ
@given(st.integers(min_value=0, max_value=50), st.integers(min_value=0, max_value=5))
def test_exact_sizes_round_trip(k: int, unit: int) -> None:
    n = k << (10 * unit)
    assert units.parse_bytes("--memory", units.format_bytes(n)) == n


@FUZZ
@given(st.one_of(st.just(0), st.integers(min_value=10**7, max_value=4 * 10**9)))
def test_cpus_round_trip(nano: int) -> None:
    assert units.parse_cpus(units.format_cpus(nano), ncpu=4) == nano


@FUZZ
@given(st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=8))
def test_a_cpuset_is_normalised_once_and_for_all(cpus: list[int]) -> None:
    text = ",".join(map(str, cpus))
    norm = units.parse_cpuset(text, ncpu=8)
    assert units.parse_cpuset(norm, ncpu=8) == norm


# The VM's -m and --cpus (pycont vm run, %%vm) take strings and numbers.
@FUZZ
@given(
    st.one_of(
        biased_text(" eE+"),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from(["inf", "-inf", "nan", "1e400", "2.0", " 1 "]),
    )
)
def test_vm_memory_and_cpus_raise_only_usage_errors(value: str | float) -> None:
    from pycont.vm.machine import parse_cpus, parse_memory

    for parse in (parse_cpus, parse_memory):
        try:
            parse(value)  # type: ignore[arg-type]
        except UsageError as err:
            one_line(err)


# ---- published ports ----------------------------------------------------------------------


@FUZZ
@given(biased_text("/tcpudpTCPsctp", max_size=30))
@example("1" * 5000)
@example("8080:" + "0" * 5000 + "80/udp")
@example("\n")
def test_publish_specs_raise_only_usage_errors_and_stay_in_range(spec: str) -> None:
    try:
        bindings = ports.parse(spec)
    except UsageError as err:
        one_line(err)
        return
    assert bindings
    for b in bindings:
        assert 1 <= b.container_port <= 65535
        assert 0 <= b.host_port <= 65535 and b.proto in ports.PROTOS
        assert b.host_port_end == 0 or b.host_port < b.host_port_end <= 65535


@FUZZ
@given(biased_text("/tcpudp", max_size=30))
@example("1" * 5000)
def test_exposed_ports_raise_only_usage_errors(item: str) -> None:
    try:
        port, proto = ports.parse_exposed(item)
    except UsageError as err:
        one_line(err)
        return
    assert 1 <= port <= 65535 and proto in ports.PROTOS


@FUZZ
@given(
    st.integers(min_value=1, max_value=65535),
    st.integers(min_value=0, max_value=65535),
    st.sampled_from(["", "127.0.0.1", "[::1]"]),
    st.sampled_from(["", "/tcp", "/udp"]),
)
def test_a_valid_publish_spec_says_what_it_said(
    cport: int, hport: int, ip: str, proto: str
) -> None:
    spec = f"{ip}:{hport}:{cport}{proto}" if ip else f"{hport}:{cport}{proto}"
    (b,) = ports.parse(spec)
    assert (b.container_port, b.host_port, b.proto) == (cport, hport, proto[1:] or "tcp")
    assert b.host_ip == ip.strip("[]")


# ---- the container state loader -----------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
_STATE_KEYS = ["status", "pid", "shim_pid", "created", "exit_code", "oom_killed", "error"]
_state_docs = st.one_of(
    _json,
    st.fixed_dictionaries({}, optional={k: _json for k in _STATE_KEYS}),
    st.fixed_dictionaries({"status": st.sampled_from(["created", "running", "exited", "?"])}),
)


@settings(FUZZ)
@given(_state_docs, st.one_of(_json, st.just("{"), st.just("")))
def test_the_state_loader_raises_only_oserror_or_valueerror(
    tmp_path_factory: pytest.TempPathFactory, state: object, config: object
) -> None:
    from pycont.errors import PycontError
    from pycont.runtime import state as st_mod

    cdir = tmp_path_factory.mktemp("ctr")
    Path(cdir, "state.json").write_text(json.dumps(state))
    Path(cdir, "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    for load in (st_mod.load_state, st_mod.load_config):
        with contextlib.suppress(OSError, ValueError, PycontError):  # state.UNREADABLE
            load(str(cdir))
