"""The probe's logic on fake /proc and /sys text: no root, no namespaces, no real cgroupfs."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pycont.display_probe import probe_html
from pycont.doctor import doctor_text
from pycont.errors import KernelError
from pycont.kernel import CLONE_NEWNS, CLONE_NEWUSER, MNT_DETACH, MS_PRIVATE, MS_REC, probe_child
from pycont.kernel import probe as probe_mod
from pycont.kernel.probe import (
    Answer,
    Probe,
    cgroup_layout,
    in_initial_userns,
    kvm_answer,
    no_new_privs_answer,
    own_cgroup_dir,
    parse_mountinfo,
    root_answer,
    seccomp_answer,
    status_fields,
    user_namespaces_answer,
)
from pycont.kernel.recording import RecordingKernel

# /proc/self/mountinfo of the development machines: a v1 hybrid (see shared/DESIGN.md).
HYBRID = """\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CGROUP = """\
9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
1:cpu:/
0::/
"""
# A systemd distribution or Binder: one cgroup2 mount at /sys/fs/cgroup (nsdelegate shown).
V2 = """\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""
V2_CGROUP = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/jupyter.scope\n"
# Old v1 only, with cpu and cpuacct co-mounted in one hierarchy.
V1 = """\
31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
"""


def fake_read(root: Path) -> Callable[[str], str]:
    """Read absolute paths from a fake filesystem under ``root``."""
    return lambda path: (root / path.lstrip("/")).read_text()


def put(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


# ---- mountinfo and cgroup layout -----------------------------------------------------------


def test_parse_mountinfo_unescapes_and_skips_optional_fields() -> None:
    text = (
        "7 1 0:5 /a\\040b /mnt/with\\040space rw shared:4 master:2 - overlay pycont rw,lowerdir=/l"
    )
    (m,) = parse_mountinfo(text)
    assert m.root == "/a b"
    assert m.mount_point == "/mnt/with space"
    assert m.fstype == "overlay"
    assert m.super_options == ("rw", "lowerdir=/l")


def test_hybrid_layout(tmp_path: Path) -> None:
    put(tmp_path, "/sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n")
    layout = cgroup_layout(HYBRID, read=fake_read(tmp_path))
    assert layout.mode == "hybrid"
    assert layout.controllers["memory"] == "v1"
    assert layout.controllers["hugetlb"] == "v2"
    assert "systemd" not in layout.controllers  # a named hierarchy, not a controller
    assert layout.reason == (
        "hybrid: v1 controllers blkio,cpu,cpuacct,cpuset,devices,freezer,memory,pids under "
        "/sys/fs/cgroup/<name>; cgroup2 at /sys/fs/cgroup/unified with hugetlb"
    )


def test_v2_layout(tmp_path: Path) -> None:
    put(tmp_path, "/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids\n")
    layout = cgroup_layout(V2, read=fake_read(tmp_path))
    assert layout.mode == "v2"
    assert set(layout.controllers.values()) == {"v2"}
    assert layout.reason == "v2: cgroup2 at /sys/fs/cgroup with cpuset,cpu,io,memory,hugetlb,pids"


def test_v2_without_readable_controllers(tmp_path: Path) -> None:
    layout = cgroup_layout(V2, read=fake_read(tmp_path))
    assert layout.mode == "v2"
    assert layout.controllers == {}
    assert layout.reason.endswith("with no controllers")


def test_v1_layout_with_comounted_controllers(tmp_path: Path) -> None:
    layout = cgroup_layout(V1, read=fake_read(tmp_path))
    assert layout.mode == "v1"
    assert layout.controllers == {"cpu": "v1", "cpuacct": "v1", "memory": "v1"}
    assert layout.v1["cpu"].mount_point == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.reason.startswith("v1: v1 controllers cpu,cpuacct,memory under /sys/fs/cgroup")


def test_no_cgroups(tmp_path: Path) -> None:
    layout = cgroup_layout("22 1 254:0 / / rw - ext4 /dev/vda rw\n", read=fake_read(tmp_path))
    assert (layout.mode, layout.controllers) == ("none", {})
    assert layout.reason.startswith("none:")


def test_own_cgroup_dir(tmp_path: Path) -> None:
    put(tmp_path, "/sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n")
    hybrid = cgroup_layout(HYBRID, read=fake_read(tmp_path))
    assert (
        own_cgroup_dir(hybrid, HYBRID_CGROUP, "memory") == "/sys/fs/cgroup/memory/process_api/abc"
    )
    assert own_cgroup_dir(hybrid, HYBRID_CGROUP, "cpu") == "/sys/fs/cgroup/cpu"
    v2 = cgroup_layout(V2, read=lambda p: "memory pids")
    assert own_cgroup_dir(v2, V2_CGROUP, "memory") == "/sys/fs/cgroup" + V2_CGROUP.strip()[3:]


def test_own_cgroup_dir_strips_the_mounted_subtree() -> None:
    # A container that bind-mounts only its own subtree: mountinfo's root field is that subtree.
    text = "30 23 0:26 /docker/c1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    layout = cgroup_layout(text, read=lambda p: "memory")
    assert own_cgroup_dir(layout, "0::/docker/c1/app\n", "memory") == "/sys/fs/cgroup/app"


# ---- answers from /proc/self/status, uid_map, KVM, unshare results ---------------------------

STATUS = "CapEff:\t000001fffeffffff\nNoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n"


def test_status_fields() -> None:
    fields = status_fields(STATUS)
    assert fields["CapEff"] == "000001fffeffffff"
    assert fields["Seccomp"] == "0"


def test_root_answers() -> None:
    root = root_answer(0, status_fields(STATUS), "         0          0 4294967295\n")
    assert root.ok
    assert root.reason == "euid 0 with CAP_SYS_ADMIN; missing CAP_SYS_RESOURCE (capabilities(7))"
    assert not root_answer(1000, {}).ok
    no_admin = root_answer(0, {"CapEff": "00000000a80425fb"})  # docker's default set
    assert not no_admin.ok and "without CAP_SYS_ADMIN" in no_admin.reason
    in_userns = root_answer(0, status_fields(STATUS), "0 1000 1\n")
    assert not in_userns.ok and "uid_map 0 1000 1" in in_userns.reason


def test_in_initial_userns() -> None:
    assert in_initial_userns("         0          0 4294967295\n")
    assert not in_initial_userns("0 1000 1\n")


def test_seccomp_answer() -> None:
    assert seccomp_answer(status_fields(STATUS)) == Answer(
        True, "supported; this process: mode 0 (disabled)"
    )
    filtered = seccomp_answer({"Seccomp": "2", "Seccomp_filters": "3"}, "kill_process allow")
    assert filtered.reason == "supported; this process: mode 2 (filter), 3 filter(s)"
    assert filtered.detail == "actions: kill_process allow"
    assert not seccomp_answer({}).ok


def test_no_new_privs_answer() -> None:
    answer = no_new_privs_answer(status_fields(STATUS), "6.18.44-fc-v657")
    assert answer.ok and answer.reason.endswith("NoNewPrivs 0")
    assert not no_new_privs_answer({}, "3.2.0-4-amd64").ok


def test_kvm_answers() -> None:
    missing = kvm_answer(FileNotFoundError(errno.ENOENT, "No such file or directory"), False)
    assert not missing.ok and missing.reason.startswith("no /dev/kvm")
    denied = kvm_answer(PermissionError(errno.EACCES, "Permission denied"), False)
    assert denied.reason == "open /dev/kvm: Permission denied [EACCES] (not in the kvm group?)"
    pvm = kvm_answer(12, True)
    assert pvm.ok
    assert pvm.reason.startswith(
        "/dev/kvm opens (KVM_GET_API_VERSION = 12); whether a guest boots is decided by a boot test"
    )
    assert "kvm_pvm" in pvm.reason
    assert "kvm_pvm" not in kvm_answer(12, False).reason


def test_user_namespaces_answers() -> None:
    refused = {"ok": False, "reason": str(KernelError("unshare(CLONE_NEWUSER)", errno.EPERM))}
    answer = user_namespaces_answer(1000, {"user.max_user_namespaces": "0"}, refused, None)
    assert not answer.ok
    assert answer.reason == (
        "unshare(CLONE_NEWUSER): Operation not permitted [EPERM] (user.max_user_namespaces = 0)"
    )
    sysctls = {"user.max_user_namespaces": "96365"}
    as_root = user_namespaces_answer(0, sysctls, {"ok": True}, {"ok": True, "uid": 65534})
    assert as_root.ok
    assert as_root.reason == (
        "unshare(CLONE_NEWUSER) works; an unprivileged user can too "
        "(tried as uid 65534; user.max_user_namespaces = 96365)"
    )
    nobody_refused = dict(refused, uid=65534)
    assert "an unprivileged user cannot: unshare(CLONE_NEWUSER): Operation not permitted" in (
        user_namespaces_answer(0, sysctls, {"ok": True}, nobody_refused).reason
    )


# ---- the child's experiments, against the recording kernel ---------------------------------


def test_overlay_experiment_makes_the_documented_calls(tmp_path: Path) -> None:
    kernel = RecordingKernel()
    base = str(tmp_path / "probe")
    result = probe_child._try_overlay(base, False, kernel)
    assert [c.name for c in kernel.calls] == ["unshare", "mount", "mount", "umount2"]
    assert kernel.calls[0].args == (CLONE_NEWNS,)
    assert kernel.calls[1].args == ("none", "/", "", MS_REC | MS_PRIVATE, "")
    source, target, fstype, _, data = kernel.calls[2].args
    assert (source, target, fstype) == ("pycont-probe", f"{base}/merged", "overlay")
    assert data == f"lowerdir={base}/lower,upperdir={base}/upper,workdir={base}/work"
    assert kernel.calls[3].args == (f"{base}/merged", MNT_DETACH)
    # Nothing was mounted, so the write stayed in merged/: the probe must say no.
    assert not result["ok"] and "did not land" in result["reason"]
    assert not os.path.exists(base)


def test_overlay_in_userns_maps_the_caller_and_asks_for_userxattr(tmp_path: Path) -> None:
    kernel = RecordingKernel()
    proc: list[tuple[str, str]] = []

    def write(path: str, text: str) -> None:
        if path.startswith("/proc/"):
            proc.append((path, text))  # never touch this process's own maps
        else:
            Path(path).write_text(text)

    probe_child._try_overlay(str(tmp_path / "p"), True, kernel, write)
    assert kernel.calls[0].args == (CLONE_NEWUSER | CLONE_NEWNS,)
    assert proc == [
        ("/proc/self/setgroups", "deny"),
        ("/proc/self/uid_map", f"0 {os.geteuid()} 1"),
        ("/proc/self/gid_map", f"0 {os.getegid()} 1"),
    ]
    assert str(kernel.calls[2].args[4]).endswith(",userxattr")


def test_userns_experiment_reports_the_refusal() -> None:
    kernel = RecordingKernel(fail={"unshare": errno.EPERM})
    with pytest.raises(KernelError):
        probe_child._try_userns(None, kernel)
    assert probe_child._try_userns(None, RecordingKernel()) == {"ok": True, "uid": None}


def test_never_forks_the_calling_process() -> None:
    with pytest.raises(AssertionError):
        probe_child._in_fork(probe_child._try_userns, None)


# ---- formatting ------------------------------------------------------------------------------


def make_probe() -> Probe:
    yes, no = Answer(True, "fine"), Answer(False, "refused <EPERM>", "a detail")
    return Probe(
        root=no,
        user_namespaces=yes,
        cgroup_mode="v2",
        cgroup=Answer(True, "v2: cgroup2 at /sys/fs/cgroup with memory"),
        cgroup_controllers={"memory": "v2"},
        cgroup_writable=no,
        overlay=no,
        overlay_in_userns=yes,
        seccomp=yes,
        no_new_privs=yes,
        kvm=no,
        kernel="6.1.0-18-amd64",
        mode="rootless",
        elapsed=0.123,
    )


def test_lines_and_str() -> None:
    p = make_probe()
    lines = p.lines()
    assert len(lines) == 9
    assert lines[0] == "✘ root: refused <EPERM>"
    assert lines[1] == "✔ user namespaces: fine"
    assert lines[2] == "✔ cgroups: v2: cgroup2 at /sys/fs/cgroup with memory"
    assert str(p) == "\n".join(lines)
    assert p.mode_summary.startswith("rootless: namespaces through a user namespace")


def test_as_dict_is_json_shaped() -> None:
    d = make_probe().as_dict()
    assert d["root"] == {"ok": False, "reason": "refused <EPERM>", "detail": "a detail"}
    assert d["cgroup_controllers"] == {"memory": "v2"}
    assert (d["mode"], d["cgroup_mode"], d["kernel"]) == ("rootless", "v2", "6.1.0-18-amd64")


def test_html_escapes_reasons() -> None:
    html = probe_html(make_probe())
    assert html.startswith("<table>") and html.endswith("</table>")
    assert "refused &lt;EPERM&gt;" in html
    assert html.count("<tr>") == 10  # heading + nine answers


def test_doctor_text() -> None:
    text = doctor_text(make_probe())
    lines = text.splitlines()
    assert lines[0] == "pycont doctor"
    assert lines[2].startswith("mode: rootless: ")
    assert "✘ root: refused <EPERM>" in lines
    assert "    a detail" in lines
    # whether Docker's seccomp profile can be built here: one line, whichever the answer
    assert sum(line[2:].startswith("seccomp profile: ") for line in lines) == 1
    # where the course's kernel runs: this fake rootless probe has no delegated cgroup, so the
    # lab VM where this machine can boot one, else this host with both reasons
    backend = next(line for line in lines if line.startswith("backend: "))
    assert backend.startswith(("backend: pycont's lab VM (", "backend: this host ("))
    assert lines[-1] == "probed in 123 ms"


def test_the_kernel_seam_draws_no_html() -> None:
    assert not hasattr(Probe, "_repr_html_")  # the notebook layer registers probe_html


def test_public_names_exist() -> None:
    for name in probe_mod.__all__:
        assert hasattr(probe_mod, name), name
