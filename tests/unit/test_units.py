"""docker's flag values to kernel numbers: tables of what is accepted, and what is refused and how.

No root, no cgroupfs: pure functions (block devices come from a fake ``stat``)."""

from __future__ import annotations

import contextlib
import os
import stat
from types import SimpleNamespace
from typing import Any

import pytest

from pycont.cgroups import Limits, Stats, units
from pycont.cgroups.units import DeviceRate
from pycont.errors import UsageError

MiB = 1 << 20
GiB = 1 << 30


def one_line_error(exc: pytest.ExceptionInfo[UsageError], flag: str, text: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"invalid {flag} "), msg
    assert text in msg or repr(text)[1:-1] in msg, msg
    return msg


# ---- sizes ------------------------------------------------------------------------------------

SIZES_OK = [
    ("64m", 64 * MiB),
    ("64mb", 64 * MiB),
    ("64MiB", 64 * MiB),
    ("64M", 64 * MiB),
    ("64MB", 64 * MiB),
    ("64mib", 64 * MiB),
    ("64Mb", 64 * MiB),
    ("64mi", 64 * MiB),  # go-units' regex takes "i" without "b" too
    ("67108864", 64 * MiB),
    ("1.5g", 3 * GiB // 2),
    ("1.5G", 3 * GiB // 2),
    ("1.5GiB", 3 * GiB // 2),
    ("0", 0),
    ("1k", 1024),
    ("1kb", 1024),
    ("1KiB", 1024),
    ("0.5k", 512),
    ("1t", 1 << 40),
    ("2TB", 2 << 40),
    ("1p", 1 << 50),
    ("8191p", 8191 << 50),
    ("10b", 10),
    ("10B", 10),
    ("1.5", 1),  # a fraction of a byte is dropped, as docker's int64() does
    ("007m", 7 * MiB),
]


@pytest.mark.parametrize(("text", "expected"), SIZES_OK)
def test_parse_bytes_accepts(text: str, expected: int) -> None:
    assert units.parse_bytes("--memory", text) == expected


SIZES_BAD = [
    "-64m",
    "-1",
    "1e99",
    "1e3",
    "1E3m",
    "nan",
    "NaN",
    "inf",
    "Infinity",
    "1_000",
    "６４m",  # fullwidth digits
    "٦٤m",  # Arabic-Indic digits
    "64x",
    "64kk",
    "64mbb",
    "64 m",
    " 64m",
    "64m ",
    "64m\n",
    "\t64",
    "",
    "m",
    "b",
    "ib",
    "64ib",
    "64i",
    "1.",
    ".5m",
    "1.2.3m",
    "0x40",
    "+64m",
    "1,5g",
    "8192p",  # above int64
    "99999999999999999999",
    "64e",
    "64m;",
]


@pytest.mark.parametrize("text", SIZES_BAD)
def test_parse_bytes_rejects(text: str) -> None:
    with pytest.raises(UsageError) as exc:
        units.parse_bytes("--memory", text)
    msg = one_line_error(exc, "--memory", text)
    assert "expected a size like 64m, 1.5g or 67108864" in msg


def test_parse_bytes_message_is_docker_like() -> None:
    with pytest.raises(UsageError) as exc:
        units.parse_bytes("--memory", "1e99")
    assert str(exc.value) == (
        'invalid --memory "1e99": expected a size like 64m, 1.5g or 67108864 '
        "(units b, k, m, g, t, p; binary)"
    )


def test_parse_bytes_escapes_control_characters() -> None:
    with pytest.raises(UsageError) as exc:
        units.parse_bytes("--memory", "64m\n")
    assert str(exc.value).startswith('invalid --memory "64m\\n": ')


@pytest.mark.parametrize(
    ("text", "expected"),
    [("6m", 6 * MiB), ("6291456", 6 * MiB), ("64m", 64 * MiB), ("1.5g", 3 * GiB // 2), ("0", 0)],
)
def test_parse_memory_accepts(text: str, expected: int) -> None:
    assert units.parse_memory("--memory", text) == expected


@pytest.mark.parametrize("text", ["5m", "6291455", "1k", "1", "5.99m"])
def test_parse_memory_minimum_is_6mb(text: str) -> None:
    with pytest.raises(UsageError) as exc:
        units.parse_memory("--memory", text)
    assert "Minimum memory limit allowed is 6MB" in one_line_error(exc, "--memory", text)


@pytest.mark.parametrize(
    ("text", "expected"), [("-1", -1), ("0", 0), ("128m", 128 * MiB), ("1g", GiB)]
)
def test_parse_memory_swap(text: str, expected: int) -> None:
    assert units.parse_memory_swap(text) == expected


@pytest.mark.parametrize("text", ["-2", "-1m", "", "lots", "1e9"])
def test_parse_memory_swap_rejects(text: str) -> None:
    with pytest.raises(UsageError) as exc:
        units.parse_memory_swap(text)
    assert "-1 for unlimited swap" in one_line_error(exc, "--memory-swap", text)


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0B"), (1023, "1023B"), (1024, "1KiB"), (64 * MiB, "64MiB"), (3 * GiB // 2, "1.5GiB")],
)
def test_format_bytes(n: int, text: str) -> None:
    assert units.format_bytes(n) == text


# ---- CPUs -------------------------------------------------------------------------------------

CPUS_OK = [
    ("0.5", 500_000_000),
    ("1", 1_000_000_000),
    ("2", 2_000_000_000),
    ("2.0", 2_000_000_000),
    ("1.5", 1_500_000_000),
    ("0.01", 10_000_000),
    ("0.123456789", 123_456_789),
    (".5", 500_000_000),
    ("1.", 1_000_000_000),
    ("0", 0),
    ("0.0", 0),
    ("000.50", 500_000_000),
]


@pytest.mark.parametrize(("text", "expected"), CPUS_OK)
def test_parse_cpus_accepts(text: str, expected: int) -> None:
    assert units.parse_cpus(text, ncpu=2) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0.1234567891", "too many decimal places"),
        ("0.0000000001", "too many decimal places"),
        ("-1", "must not be negative"),
        ("-0.5", "must not be negative"),
        ("3", "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
        ("2.000000001", "range of CPUs is from 0.01 to 2.00"),
        ("0.001", "range of CPUs is from 0.01 to 2.00"),
        ("0.009999999", "range of CPUs"),
        ("99999999999", "range of CPUs"),
        ("", "expected a number of CPUs"),
        (".", "expected a number of CPUs"),
        ("abc", "expected a number of CPUs"),
        ("1e3", "expected a number of CPUs"),
        ("nan", "expected a number of CPUs"),
        ("inf", "expected a number of CPUs"),
        ("1_0", "expected a number of CPUs"),
        ("１", "expected a number of CPUs"),
        ("٠.٥", "expected a number of CPUs"),
        (" 1", "expected a number of CPUs"),
        ("1,5", "expected a number of CPUs"),
        ("0x1", "expected a number of CPUs"),
        ("1/2", "expected a number of CPUs"),
        ("+1", "expected a number of CPUs"),
    ],
)
def test_parse_cpus_rejects(text: str, why: str) -> None:
    with pytest.raises(UsageError) as exc:
        units.parse_cpus(text, ncpu=2)
    assert why in one_line_error(exc, "--cpus", text)


def test_parse_cpus_range_message_is_docker_s() -> None:
    with pytest.raises(UsageError) as exc:
        units.parse_cpus("5", ncpu=4)
    assert str(exc.value) == (
        'invalid --cpus "5": range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available'
    )


def test_parse_cpus_default_counts_this_process_s_cpus() -> None:
    n = len(os.sched_getaffinity(0))
    assert units.parse_cpus(str(n)) == n * 1_000_000_000
    with pytest.raises(UsageError):
        units.parse_cpus(str(n + 1))


@pytest.mark.parametrize(
    ("nano", "period", "quota"),
    [
        (500_000_000, 100_000, 50_000),
        (1_000_000_000, 100_000, 100_000),
        (1_500_000_000, 100_000, 150_000),
        (10_000_000, 100_000, 1_000),  # 0.01 CPU: the kernel's 1 ms minimum quota
        (250_000_000, 100_000, 25_000),
        (500_000_000, 50_000, 25_000),
        (0, 100_000, -1),
    ],
)
def test_cpus_to_quota(nano: int, period: int, quota: int) -> None:
    assert units.cpus_to_quota(nano, period) == quota


@pytest.mark.parametrize(
    ("nano", "text"), [(500_000_000, "0.5"), (1_000_000_000, "1"), (123_456_789, "0.123456789")]
)
def test_format_cpus(nano: int, text: str) -> None:
    assert units.format_cpus(nano) == text
    assert units.parse_cpus(text, ncpu=2) == nano


@pytest.mark.parametrize(
    ("shares", "weight"),
    [
        (2, 1),
        (262144, 10000),
        (1024, 39),  # docker's default shares: weight 39, not v2's default of 100
        (512, 20),
        (100, 4),
        (1, 1),  # clamped to 2 first
        (0, 1),
        (300000, 10000),  # clamped to 262144 first
    ],
)
def test_shares_to_weight_is_runc_s_conversion(shares: int, weight: int) -> None:
    assert units.shares_to_weight(shares) == weight
    clamped = max(2, min(262144, shares))
    assert weight == 1 + ((clamped - 2) * 9999) // 262142


@pytest.mark.parametrize(("shares", "kept"), [(1, 2), (2, 2), (1024, 1024), (10**6, 262144)])
def test_clamp_shares(shares: int, kept: int) -> None:
    assert units.clamp_shares(shares) == kept


@pytest.mark.parametrize(("text", "value"), [("512", 512), ("1024", 1024), ("0", 0), ("2", 2)])
def test_parse_cpu_shares(text: str, value: int) -> None:
    assert units.parse_cpu_shares(text) == value


@pytest.mark.parametrize("text", ["-1", "1.5", "", "abc", "５１２", " 512", "1_024"])
def test_parse_cpu_shares_rejects(text: str) -> None:
    with pytest.raises(UsageError) as exc:
        units.parse_cpu_shares(text)
    one_line_error(exc, "--cpu-shares", text)


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("0", "0"),
        ("0-1", "0-1"),
        ("0-1,3", "0-1,3"),
        ("3,0-1", "0-1,3"),
        ("0,1,2", "0-2"),
        ("1-1", "1"),
        ("0-3", "0-3"),
        ("2,2", "2"),
    ],
)
def test_parse_cpuset_accepts(text: str, normal: str) -> None:
    assert units.parse_cpuset(text, ncpu=4) == normal


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("4", "CPU 4 not available"),
        ("0-5", "CPU 4-5 not available"),
        ("1-0", "goes backwards"),
        ("", "expected a list of CPUs like 0-1,3 (this machine has CPUs 0-3)"),
        ("a", "expected a list"),
        ("0-", "expected a list"),
        ("-1", "expected a list"),
        ("0,,1", "expected a list"),
        ("0 - 1", "expected a list"),
        ("٠", "expected a list"),
        ("0-1,", "expected a list"),
    ],
)
def test_parse_cpuset_rejects(text: str, why: str) -> None:
    with pytest.raises(UsageError) as exc:
        units.parse_cpuset(text, ncpu=4)
    assert why in one_line_error(exc, "--cpuset-cpus", text)


# ---- pids, blkio ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"), [("64", 64), ("1", 1), ("0", -1), ("-1", -1), ("4194304", 4194304)]
)
def test_parse_pids_limit(text: str, value: int) -> None:
    assert units.parse_pids_limit(text) == value


@pytest.mark.parametrize("text", ["-2", "4194305", "1.5", "abc", "", "64k", "٦٤", "1_0", " 64"])
def test_parse_pids_limit_rejects(text: str) -> None:
    with pytest.raises(UsageError) as exc:
        units.parse_pids_limit(text)
    assert "or -1 (or 0) for unlimited" in one_line_error(exc, "--pids-limit", text)


@pytest.mark.parametrize(("text", "value"), [("10", 10), ("1000", 1000), ("500", 500), ("0", 0)])
def test_parse_blkio_weight(text: str, value: int) -> None:
    assert units.parse_blkio_weight(text) == value


@pytest.mark.parametrize("text", ["9", "1001", "-1", "abc", "", "5e2"])
def test_parse_blkio_weight_rejects(text: str) -> None:
    with pytest.raises(UsageError) as exc:
        units.parse_blkio_weight(text)
    assert "from 10 to 1000" in one_line_error(exc, "--blkio-weight", text)


@pytest.mark.parametrize(("weight", "io"), [(10, 1), (1000, 10000), (500, 4950), (300, 2930)])
def test_blkio_weight_to_io_weight(weight: int, io: int) -> None:
    assert units.blkio_weight_to_io_weight(weight) == io


def fake_stat(path: str) -> Any:
    """A tiny /dev: sda (8:0) and sdb (8:16) are block devices, null a character device."""
    devices = {
        "/dev/sda": (stat.S_IFBLK, 8, 0),
        "/dev/sdb": (stat.S_IFBLK, 8, 16),
        "/dev/null": (stat.S_IFCHR, 1, 3),
    }
    if path not in devices:
        raise FileNotFoundError(2, "No such file or directory", path)
    kind, major, minor = devices[path]
    return SimpleNamespace(st_mode=kind | 0o600, st_rdev=os.makedev(major, minor))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/dev/sda:1mb", DeviceRate("/dev/sda", 8, 0, MiB)),
        ("/dev/sdb:2m", DeviceRate("/dev/sdb", 8, 16, 2 * MiB)),
        ("/dev/sda:1048576", DeviceRate("/dev/sda", 8, 0, MiB)),
        ("/dev/sda:0", DeviceRate("/dev/sda", 8, 0, 0)),
    ],
)
def test_parse_device_rate(text: str, expected: DeviceRate) -> None:
    got = units.parse_device_rate("--device-read-bps", text, stat=fake_stat)
    assert got == expected
    assert got.device == f"{expected.major}:{expected.minor}"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("sda:1mb", "expected DEVICE:RATE"),
        ("/dev/sda", "expected DEVICE:RATE"),
        (":1mb", "expected DEVICE:RATE"),
        ("/dev/sda:", 'bad rate ""'),
        ("/dev/sda:fast", 'bad rate "fast"'),
        ("/dev/sda:-1", 'bad rate "-1"'),
        ("/dev/sda:1e9", 'bad rate "1e9"'),
        ("/dev/null:1mb", "/dev/null is not a block device"),
        ("/dev/nope:1mb", "/dev/nope: No such file or directory"),
    ],
)
def test_parse_device_rate_rejects(text: str, why: str) -> None:
    with pytest.raises(UsageError) as exc:
        units.parse_device_rate("--device-write-bps", text, stat=fake_stat)
    assert why in one_line_error(exc, "--device-write-bps", text)


# ---- Limits.from_options: docker's cross-flag rules -------------------------------------------


def test_from_options_converts_every_flag() -> None:
    limits = Limits.from_options(
        memory="64m",
        memory_reservation="32m",
        cpus="0.5",
        cpu_shares="512",
        cpuset_cpus="1,0",
        pids_limit="64",
        blkio_weight="300",
        ncpu=2,
    )
    assert limits == Limits(
        memory=64 * MiB,
        memory_swap=0,  # docker's default, resolved by the driver: as much swap as memory
        memory_reservation=32 * MiB,
        nano_cpus=500_000_000,
        cpu_shares=512,
        cpuset_cpus="0-1",
        pids_limit=64,
        blkio_weight=300,
    )


def test_from_options_takes_python_numbers() -> None:
    limits = Limits.from_options(memory=64 * MiB, cpus=0.5, pids_limit=0, ncpu=2)
    assert (limits.memory, limits.nano_cpus, limits.pids_limit) == (64 * MiB, 500_000_000, -1)
    with pytest.raises(UsageError, match="--cpus True"):
        Limits.from_options(cpus=True)


def test_from_options_zero_means_not_set() -> None:
    limits = Limits.from_options(memory="0", cpu_shares="0", blkio_weight="0", update=True)
    assert limits.is_empty()
    assert Limits.from_options(cpus="0", ncpu=2).nano_cpus == 0  # written: "no CPU limit"


def test_update_gives_no_defaults() -> None:
    assert Limits.from_options(memory="64m", update=True) == Limits(memory=64 * MiB)
    assert Limits.from_options(memory_swap="128m", update=True).memory_swap == 128 * MiB


def test_memory_swap_rules() -> None:
    assert Limits.from_options(memory="64m", memory_swap="-1").memory_swap == -1
    assert Limits.from_options(memory="64m", memory_swap="64m").memory_swap == 64 * MiB
    assert Limits.from_options(memory_swap="0").memory_swap is None  # docker's "unset"
    with pytest.raises(UsageError, match='invalid --memory-swap "128m": set --memory too'):
        Limits.from_options(memory_swap="128m")
    with pytest.raises(UsageError, match='invalid --memory-swap "32m": must be at least'):
        Limits.from_options(memory="64m", memory_swap="32m")


def test_reservation_must_not_exceed_memory() -> None:
    with pytest.raises(UsageError, match='invalid --memory-reservation "128m": must be at most'):
        Limits.from_options(memory="64m", memory_reservation="128m")


def a_block_device() -> tuple[str, int, int]:
    """A block device of this machine (from /sys/block), as from_options stats the real /dev."""
    for name in sorted(os.listdir("/sys/block")) if os.path.isdir("/sys/block") else []:
        path = f"/dev/{name}"
        with contextlib.suppress(OSError):
            st = os.stat(path)
            if stat.S_ISBLK(st.st_mode):
                return path, os.major(st.st_rdev), os.minor(st.st_rdev)
    pytest.skip("no block device under /dev to point --device-read-bps at")


def test_device_flags_take_one_or_many() -> None:
    path, major, minor = a_block_device()
    one = Limits.from_options(device_read_bps=f"{path}:1mb")
    many = Limits.from_options(device_write_bps=[f"{path}:1mb", f"{path}:0"])
    assert one.device_read_bps == (DeviceRate(path, major, minor, MiB),)
    assert [(d.device, d.rate) for d in many.device_write_bps] == [
        (f"{major}:{minor}", MiB),
        (f"{major}:{minor}", 0),
    ]


def test_merged_as_options_and_describe() -> None:
    path, _, _ = a_block_device()
    base = Limits.from_options(memory="64m", cpus="0.5", device_read_bps=f"{path}:1mb", ncpu=2)
    newer = Limits.from_options(cpus="1.5", pids_limit="10", update=True, ncpu=2)
    merged = base.merged(newer)
    assert (merged.memory, merged.nano_cpus, merged.pids_limit) == (64 * MiB, 1_500_000_000, 10)
    options = merged.as_options()
    assert options["cpus"] == "1.5" and options["device_read_bps"] == [f"{path}:1048576"]
    assert Limits.from_options(**options, ncpu=2) == merged
    assert merged.describe() == [
        "memory 64MiB",
        "cpus 1.5",
        "pids 10",
        f"read {path} 1MiB/s",
    ]


def test_stats_cpu_percent() -> None:
    before = Stats(timestamp=10.0, cpu_usage_ns=1_000_000_000)
    after = Stats(timestamp=12.0, cpu_usage_ns=2_000_000_000)
    assert after.cpu_percent(before) == pytest.approx(50.0)
    assert Stats(timestamp=12.0).cpu_percent(before) is None
