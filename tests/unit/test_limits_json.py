"""Limits stored as JSON: numbers and device tuples, read back exactly (no docker strings)."""

from __future__ import annotations

import json

import pytest

from pycont.cgroups import DeviceRate, Limits

MiB = 1 << 20
SDA = DeviceRate("/dev/sda", 8, 0, MiB)


def round_trip(limits: Limits) -> Limits:
    return Limits.from_json(json.loads(json.dumps(limits.to_json())))


def test_every_field_survives_a_round_trip() -> None:
    full = Limits(
        memory=64 * MiB,
        memory_swap=-1,
        memory_reservation=32 * MiB,
        nano_cpus=500_000_000,
        cpu_shares=512,
        cpuset_cpus="0-1",
        pids_limit=-1,
        device_read_bps=(SDA,),
        device_write_bps=(SDA, DeviceRate("/dev/sdb", 8, 16, 0)),
        blkio_weight=300,
    )
    assert round_trip(full) == full
    assert round_trip(Limits()) == Limits()


def test_json_holds_numbers_not_docker_strings() -> None:
    data = Limits.from_options(memory="64m", cpus="0.5").to_json()
    # --memory alone implies docker's "as much swap as memory": memory_swap 0, kept as given.
    assert data == {"memory": 64 * MiB, "memory_swap": 0, "nano_cpus": 500_000_000}
    assert Limits(device_read_bps=(SDA,)).to_json() == {
        "device_read_bps": [["/dev/sda", 8, 0, MiB]]
    }


def test_zero_is_kept_apart_from_unset() -> None:
    # nano_cpus 0 is "no CPU limit" (docker update --cpus 0), not the same as not given.
    assert round_trip(Limits(nano_cpus=0)).nano_cpus == 0
    assert Limits.from_json({"memory": None}) == Limits()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"memroy": 1}, "unknown field 'memroy'"),
        ({"memory": "64m"}, "memory = '64m' is not int"),
        ({"memory": True}, "memory = True is not int"),
        ({"cpuset_cpus": 1}, "cpuset_cpus = 1 is not str"),
        ({"device_read_bps": "/dev/sda:1mb"}, "is not a list"),
        ({"device_read_bps": [["/dev/sda"]]}, "is not a device rate"),
        ({"device_read_bps": [["/dev/sda", 8, 0, "1mb"]]}, "is not int"),
        ([1], "expected an object"),
    ],
)
def test_what_to_json_did_not_write_is_refused(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Limits.from_json(data)  # type: ignore[arg-type]
