"""The probe's answers, read from the kernel's own text: /proc/self/status, uid_map, sysctls.

Pure functions over text (no file is opened here), so the unit tests feed them fake /proc files
and every reason a learner reads can be checked without the machine it describes.
"""

from __future__ import annotations

import errno
from typing import Any

from pycont.kernel.mounts import Answer

__all__ = [
    "in_initial_userns",
    "kvm_answer",
    "no_new_privs_answer",
    "root_answer",
    "seccomp_answer",
    "status_fields",
    "user_namespaces_answer",
]


def status_fields(text: str) -> dict[str, str]:
    """/proc/<pid>/status (proc(5)) as a dict of ``Name: value`` lines."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _kernel_at_least(release: str, want: tuple[int, int]) -> bool:
    nums = release.split("-")[0].split(".")
    try:
        return (int(nums[0]), int(nums[1])) >= want
    except (IndexError, ValueError):
        return False


# capabilities(7): the ones a container runtime leans on, by bit number.
_NOTABLE_CAPS = {
    0: "CAP_CHOWN",
    1: "CAP_DAC_OVERRIDE",
    5: "CAP_KILL",
    6: "CAP_SETGID",
    7: "CAP_SETUID",
    12: "CAP_NET_ADMIN",
    18: "CAP_SYS_CHROOT",
    21: "CAP_SYS_ADMIN",
    24: "CAP_SYS_RESOURCE",
    27: "CAP_MKNOD",
}
_CAP_SYS_ADMIN = 21


def in_initial_userns(uid_map_text: str) -> bool:
    """user_namespaces(7): the initial namespace maps every uid to itself: ``0 0 4294967295``."""
    return uid_map_text.split() in (["0", "0", "4294967295"], [])


def root_answer(euid: int, status: dict[str, str], uid_map_text: str = "") -> Answer:
    if euid != 0:
        return Answer(False, f"euid {euid}: not root")
    if not in_initial_userns(uid_map_text):
        mapping = " ".join(uid_map_text.split())
        return Answer(
            False,
            f"euid 0 inside a user namespace (uid_map {mapping}): root over its own namespaces "
            "only, an unprivileged user on the host",
        )
    cap_eff = int(status.get("CapEff", "0"), 16)
    missing = [name for bit, name in _NOTABLE_CAPS.items() if not cap_eff >> bit & 1]
    have_admin = bool(cap_eff >> _CAP_SYS_ADMIN & 1)
    reason = "euid 0 with CAP_SYS_ADMIN" if have_admin else "euid 0 but without CAP_SYS_ADMIN"
    if missing:
        reason += f"; missing {', '.join(missing)} (capabilities(7))"
    return Answer(have_admin, reason, f"CapEff {status.get('CapEff', '?')}")


def seccomp_answer(status: dict[str, str], actions: str = "") -> Answer:
    mode = status.get("Seccomp")
    if mode is None:
        return Answer(False, "no Seccomp line in /proc/self/status: kernel without CONFIG_SECCOMP")
    name = {"0": "disabled", "1": "strict", "2": "filter"}.get(mode, "unknown")
    reason = f"supported; this process: mode {mode} ({name})"
    filters = status.get("Seccomp_filters", "0")
    if filters != "0":
        reason += f", {filters} filter(s)"
    return Answer(True, reason, f"actions: {actions}" if actions else "")


def no_new_privs_answer(status: dict[str, str], release: str) -> Answer:
    # prctl(2): PR_SET_NO_NEW_PRIVS exists since Linux 3.5; the status line since 4.10.
    value = status.get("NoNewPrivs", "unknown")
    if not _kernel_at_least(release, (3, 5)):
        return Answer(False, f"kernel {release} < 3.5 has no PR_SET_NO_NEW_PRIVS")
    return Answer(True, f"prctl(PR_SET_NO_NEW_PRIVS) available; this process: NoNewPrivs {value}")


def kvm_answer(version: int | OSError, pvm: bool) -> Answer:
    if isinstance(version, OSError):
        if version.errno == errno.ENOENT:
            return Answer(False, "no /dev/kvm: a VM runs under qemu TCG (emulation)")
        name = errno.errorcode.get(version.errno or 0, "?")
        hint = " (not in the kvm group?)" if version.errno == errno.EACCES else ""
        return Answer(False, f"open /dev/kvm: {version.strerror} [{name}]{hint}")
    reason = (
        f"/dev/kvm opens (KVM_GET_API_VERSION = {version}); "
        "whether a guest boots is decided by a boot test"
    )
    if pvm:
        reason += "; kvm_pvm is loaded: a nested paravirtual hypervisor, a stock kernel won't boot"
    return Answer(version == 12, reason)  # api.rst: 12 is the only stable KVM API version


def user_namespaces_answer(
    euid: int,
    sysctls: dict[str, str],
    tried: dict[str, Any],
    tried_unprivileged: dict[str, Any] | None,
) -> Answer:
    """``tried`` is the child's result of unshare(CLONE_NEWUSER): the authoritative answer."""
    detail = "; ".join(f"{k} = {v}" for k, v in sysctls.items())
    ok = bool(tried.get("ok"))
    reason = "unshare(CLONE_NEWUSER) works" if ok else str(tried.get("reason"))
    if not ok and sysctls.get("user.max_user_namespaces") == "0":
        reason += " (user.max_user_namespaces = 0)"
    if euid == 0 and tried_unprivileged is not None:
        uid = tried_unprivileged.get("uid")
        if tried_unprivileged.get("ok"):
            too = " too" if ok else ""
            reason += f"; an unprivileged user can{too} (tried as uid {uid}; {detail})"
        else:
            reason += (
                f"; an unprivileged user cannot: {tried_unprivileged.get('reason')} "
                f"(tried as uid {uid}; {detail})"
            )
    elif euid == 0 and sysctls.get("user.max_user_namespaces") not in (None, "", "0"):
        reason += f"; for unprivileged users: {detail}"
    return Answer(ok, reason, detail)
