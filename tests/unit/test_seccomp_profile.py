"""Docker's default seccomp profile as data, its resolution for caps/arch/kernel, and the checks
load_profile makes on a profile file (pure logic: nothing is loaded into the kernel here)."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from pycont.errors import Unsupported, UsageError
from pycont.security import seccomp
from pycont.security.capabilities import DOCKER_DEFAULT

CLONE_NS = 0x7E020000  # every CLONE_NEW* flag clone(2) takes


def allowed(resolved: dict[str, Any] | None) -> set[str]:
    """The names allowed whatever their arguments."""
    assert resolved is not None
    return {
        n
        for c in resolved["syscalls"]
        if c["action"] == "SCMP_ACT_ALLOW" and not c.get("args")
        for n in c["names"]
    }


def rules_for(resolved: dict[str, Any] | None, name: str) -> list[dict[str, Any]]:
    assert resolved is not None
    return [c for c in resolved["syscalls"] if name in c["names"]]


def docker(caps: frozenset[str] = DOCKER_DEFAULT, machine: str = "x86_64", kernel: str = "6.1.0"):
    return seccomp.resolve(seccomp.default_profile(), caps, machine, kernel)


def write(tmp_path: Path, doc: Any) -> str:
    path = tmp_path / "profile.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def test_default_profile_is_docker_json_format() -> None:
    p = seccomp.default_profile()
    assert p["defaultAction"] == "SCMP_ACT_ERRNO"
    assert p["defaultErrnoRet"] == errno.EPERM
    arch_map = {a["architecture"]: a["subArchitectures"] for a in p["archMap"]}
    assert arch_map["SCMP_ARCH_X86_64"] == ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert arch_map["SCMP_ARCH_AARCH64"] == ["SCMP_ARCH_ARM"]
    assert json.loads(json.dumps(p)) == p
    names = [n for c in p["syscalls"] for n in c["names"]]
    assert len(set(names)) > 350
    assert p is not seccomp.default_profile()  # callers may change their copy


def test_default_profile_passes_its_own_checks(tmp_path: Path) -> None:
    assert seccomp.load_profile(write(tmp_path, seccomp.default_profile())) == (
        seccomp.default_profile()
    )


def test_denied_examples_are_denied_with_docker_caps() -> None:
    assert len(seccomp.DOCKER_DENIED_EXAMPLES) >= 20
    for machine in ("x86_64", "aarch64"):
        resolved = docker(machine=machine)
        assert not allowed(resolved) & set(seccomp.DOCKER_DENIED_EXAMPLES), machine
        for name in seccomp.DOCKER_DENIED_EXAMPLES:
            assert not rules_for(resolved, name), name


def test_everyday_syscalls_are_allowed() -> None:
    ok = allowed(docker())
    assert {"read", "write", "openat", "execve", "mkdir", "fork", "chroot", "capset"} <= ok
    assert "ptrace" in ok  # kernel >= 4.8


def test_cap_sys_admin_allows_mount_and_any_clone() -> None:
    with_admin = docker(DOCKER_DEFAULT | {"CAP_SYS_ADMIN"})
    assert {"mount", "umount2", "unshare", "setns", "clone", "clone3"} <= allowed(with_admin)
    assert not any(c.get("args") for c in rules_for(with_admin, "clone"))
    assert [c["action"] for c in rules_for(with_admin, "clone3")] == ["SCMP_ACT_ALLOW"]


def test_clone_without_cap_sys_admin_only_without_namespace_flags() -> None:
    (rule,) = rules_for(docker(), "clone")
    assert rule["args"] == [
        {"index": 0, "value": CLONE_NS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    (s390,) = rules_for(docker(machine="s390x"), "clone")
    assert s390["args"][0]["index"] == 1  # s390 passes clone's flags second


def test_clone3_fails_with_enosys_so_libc_falls_back_to_clone() -> None:
    (rule,) = rules_for(docker(), "clone3")
    assert (rule["action"], rule["errnoRet"]) == ("SCMP_ACT_ERRNO", errno.ENOSYS)


def test_personality_only_for_harmless_personas() -> None:
    rules = rules_for(docker(), "personality")
    values = sorted(c["args"][0]["value"] for c in rules)
    assert values == [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert all(c["args"][0]["op"] == "SCMP_CMP_EQ" for c in rules)


def test_socket_denies_af_alg_and_af_vsock() -> None:
    ops = sorted((c["args"][0]["op"], c["args"][0]["value"]) for c in rules_for(docker(), "socket"))
    assert ops == [("SCMP_CMP_EQ", 39), ("SCMP_CMP_GT", 40), ("SCMP_CMP_LT", 38)]


@pytest.mark.parametrize(
    ("cap", "names"),
    [
        ("CAP_SYS_PTRACE", {"kcmp", "process_madvise", "pidfd_getfd"}),
        ("CAP_SYS_TIME", {"settimeofday", "clock_settime"}),
        ("CAP_SYS_MODULE", {"init_module", "finit_module", "delete_module"}),
        ("CAP_SYS_RAWIO", {"iopl", "ioperm"}),
        ("CAP_SYS_PACCT", {"acct"}),
        ("CAP_SYS_BOOT", {"reboot"}),
        ("CAP_SYS_NICE", {"mbind", "set_mempolicy"}),
        ("CAP_SYS_TTY_CONFIG", {"vhangup"}),
        ("CAP_SYSLOG", {"syslog"}),
        ("CAP_BPF", {"bpf"}),
        ("CAP_PERFMON", {"perf_event_open"}),
        ("CAP_DAC_READ_SEARCH", {"open_by_handle_at"}),
    ],
)
def test_capability_conditional_rules(cap: str, names: set[str]) -> None:
    assert not names & allowed(docker())
    assert names <= allowed(docker(DOCKER_DEFAULT | {cap}))


def test_arch_conditional_rules() -> None:
    x86, arm = docker(machine="x86_64"), docker(machine="aarch64")
    assert {"arch_prctl", "modify_ldt"} <= allowed(x86)
    assert not {"set_tls", "cacheflush"} & allowed(x86)
    assert {"set_tls", "cacheflush"} <= allowed(arm)
    assert not {"arch_prctl", "modify_ldt"} & allowed(arm)
    assert x86 and x86["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert arm and arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


def test_min_kernel_rule() -> None:
    assert "ptrace" not in allowed(docker(kernel="4.4.0-210-generic"))
    assert "ptrace" in allowed(docker(kernel="4.8.0"))
    assert "ptrace" in allowed(docker(DOCKER_DEFAULT | {"CAP_SYS_PTRACE"}, kernel="4.4.0"))


def test_resolved_profile_is_oci_format() -> None:
    resolved = docker()
    assert resolved is not None
    assert set(resolved) == {"defaultAction", "defaultErrnoRet", "architectures", "syscalls"}
    for call in resolved["syscalls"]:
        assert set(call) <= {"names", "action", "errnoRet", "args"}


def test_empty_profile_means_unconfined() -> None:
    assert seccomp.resolve({}, DOCKER_DEFAULT) is None
    assert seccomp.resolve({"syscalls": []}, DOCKER_DEFAULT) is None


def test_load_oci_profile_and_config_json(tmp_path: Path) -> None:
    oci = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    assert seccomp.load_profile(write(tmp_path, oci)) == oci
    config = {"ociVersion": "1.0.2", "linux": {"seccomp": oci}}
    assert seccomp.load_profile(write(tmp_path, config)) == oci
    resolved = seccomp.resolve(oci, frozenset(), "x86_64", "6.1")
    assert resolved and resolved["architectures"] == oci["architectures"]


@pytest.mark.parametrize(
    ("doc", "fault"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ({"defaultAction": "SCMP_ACT_DENY"}, "'SCMP_ACT_DENY' is not an action"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "seccomp agent"),
        ({"syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW"}]}, "missing defaultAction"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_LOG"}]}, "names"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"]}]}, "no action"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {"names": []}}, "not a list"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": "EPERM"}, "defaultErrnoRet"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86"]}, "unknown architecture"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["FAST"]}, "unknown flag"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock"}, "listenerPath"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "linux": {}}, "without linux.seccomp"),
    ],
)
def test_load_profile_refuses_with_one_line(tmp_path: Path, doc: Any, fault: str) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(UsageError) as info:
        seccomp.load_profile(path)
    msg = str(info.value)
    assert fault in msg
    assert path in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("call", "fault", "accepted"),
    [
        ({"names": ["a"], "action": "SCMP_ACT_NOPE"}, "'SCMP_ACT_NOPE' is not", "SCMP_ACT_ALLOW"),
        (
            {"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1}]},
            "op None is not a comparison",
            "SCMP_CMP_MASKED_EQ",
        ),
        (
            {
                "names": ["a"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}],
            },
            "'SCMP_CMP_LIKE' is not a comparison",
            "SCMP_CMP_EQ",
        ),
        (
            {
                "names": ["a"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}],
            },
            "index is 6",
            "",
        ),
        ({"name": "a", "names": ["a"], "action": "SCMP_ACT_ALLOW"}, "both name and names", ""),
        (
            {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "new"}},
            "minKernel",
            "",
        ),
    ],
)
def test_load_profile_names_the_rule_and_what_is_accepted(
    tmp_path: Path, call: dict[str, Any], fault: str, accepted: str
) -> None:
    path = write(tmp_path, {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [call]})
    with pytest.raises(UsageError, match="syscalls\\[0\\]") as info:
        seccomp.load_profile(path)
    assert fault in str(info.value)
    assert accepted in str(info.value)


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read it"):
        seccomp.load_profile(str(tmp_path / "nope.json"))


def test_mode_reads_proc_status() -> None:
    assert seccomp.mode() in (0, 1, 2)


def test_missing_libseccomp_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    real = ctypes.CDLL

    def no_libseccomp(name: str, *args: Any, **kwargs: Any) -> ctypes.CDLL:
        if "seccomp" in name:
            raise OSError(f"{name}: cannot open shared object file")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", no_libseccomp)
    # A profile no other test uses: no program of it is kept in memory.
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["pycont_unit"], "action": "SCMP_ACT_LOG"}],
    }
    before = seccomp.mode()
    with pytest.raises(Unsupported, match="libseccomp.so.2 not found"):
        seccomp.install(profile, frozenset())
    assert seccomp.mode() == before  # no filter was loaded into the test process
