"""The VM tools without a VM: the cpio writer, module and kernel parsing, qemu's command line,
the guest's command script, and run_v2's argument and summary handling. No root, no qemu."""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pycont.vm import VMError
from pycont.vm.guest import command_script
from pycont.vm.initramfs import build_initramfs, find_busybox
from pycont.vm.kernel import elf_section, extract_vmlinux, module_depends, read_module
from pycont.vm.qemu import TCG, Accel, choose_accel, host_tsc_khz, qemu_command
from tests.vm import run_v2

# --- cpio ------------------------------------------------------------------------------------


def read_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, data, (rdevmajor, rdevminor)), parsed independently of the writer."""
    entries: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701", f"bad magic at {pos}"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos : pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            assert pos == len(data)
            return entries
        entries[name] = (mode, body, (rmaj, rmin))


@pytest.fixture
def busybox() -> str:
    try:
        return find_busybox(install=False)
    except VMError as err:
        pytest.skip(str(err))


def test_initramfs_is_a_newc_archive_with_init_busybox_and_modules(
    tmp_path: Path, busybox: str
) -> None:
    ko = tmp_path / "fake.ko.xz"
    ko.write_bytes(lzma.compress(b"\x7fELF module bytes", format=lzma.FORMAT_XZ))
    out = build_initramfs(
        tmp_path / "initrd.cpio",
        "#!/bin/sh\necho hi\n",
        modules=[ko],
        files={"/etc/deep/conf": "x=1\n"},
        busybox=busybox,
    )
    entries = read_newc(out.read_bytes())
    mode, body, _ = entries["init"]
    assert body == b"#!/bin/sh\necho hi\n" and mode == 0o100755
    assert entries["modules/fake.ko"][1] == b"\x7fELF module bytes"
    assert entries["modules/order"][1] == b"fake.ko\n"
    assert entries["dev/console"][0] == 0o020600 and entries["dev/console"][2] == (5, 1)
    assert entries["bin/sh"] == (0o120777, b"/bin/busybox", (0, 0))
    assert entries["bin/busybox"][1] == Path(busybox).read_bytes()
    assert entries["etc/deep"][0] == 0o040755 and entries["etc/deep/conf"][1] == b"x=1\n"
    assert not (tmp_path / "initrd.cpio.tmp").exists()
    # and another reader agrees
    listing = subprocess.run(
        [busybox, "cpio", "-t"], input=out.read_bytes(), capture_output=True, check=True
    ).stdout.decode()
    assert {"init", "bin/busybox", "modules/fake.ko", "dev/console"} <= set(listing.split())


# --- kernel files ----------------------------------------------------------------------------


def elf_with_sections(sections: dict[str, bytes]) -> bytes:
    """A minimal little-endian ELF64 file: a header, the sections' bytes, a section table."""
    names = b"\0" + b"".join(n.encode() + b"\0" for n in [*sections, ".shstrtab"])
    blobs = [*sections.values(), names]
    body = b""
    offsets = []
    for blob in blobs:
        offsets.append(64 + len(body))
        body += blob
    shoff = 64 + len(body)
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    header += struct.pack(
        "<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, len(blobs) + 1, len(blobs)
    )
    table = b"\0" * 64
    name_at = 1
    for i, (name, blob) in enumerate(zip([*sections, ".shstrtab"], blobs, strict=True)):
        table += struct.pack("<IIQQQQIIQQ", name_at, 1, 0, 0, offsets[i], len(blob), 0, 0, 1, 0)
        name_at += len(name) + 1
    return header + body + table


def test_module_depends_come_from_modinfo() -> None:
    elf = elf_with_sections(
        {".text": b"\x90" * 7, ".modinfo": b"license=GPL\0depends=netfs,9pnet,fscache\0name=9p\0"}
    )
    assert elf_section(elf, ".text") == b"\x90" * 7
    assert module_depends(elf) == ["netfs", "9pnet", "fscache"]
    assert module_depends(elf_with_sections({".modinfo": b"depends=\0name=x\0"})) == []
    with pytest.raises(VMError):
        elf_section(b"not an elf", ".modinfo")


@pytest.mark.parametrize("packer", ["xz", "gzip"])
def test_vmlinux_comes_out_of_the_bzimage(tmp_path: Path, packer: str) -> None:
    elf = b"\x7fELF" + os.urandom(4096)
    payload = lzma.compress(elf, format=lzma.FORMAT_XZ) if packer == "xz" else gzip.compress(elf)
    (tmp_path / "vmlinuz").write_bytes(b"MZ setup code " * 50 + payload + b"\0trailer")
    extract_vmlinux(tmp_path / "vmlinuz", tmp_path / "vmlinux")
    assert (tmp_path / "vmlinux").read_bytes() == elf
    (tmp_path / "bad").write_bytes(b"no payload here")
    with pytest.raises(VMError):
        extract_vmlinux(tmp_path / "bad", tmp_path / "out")


def test_read_module_decompresses_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.ko").write_bytes(b"plain")
    (tmp_path / "b.ko.xz").write_bytes(lzma.compress(b"xz", format=lzma.FORMAT_XZ))
    (tmp_path / "c.ko.gz").write_bytes(gzip.compress(b"gz"))
    assert [read_module(tmp_path / n) for n in ("a.ko", "b.ko.xz", "c.ko.gz")] == [
        b"plain",
        b"xz",
        b"gz",
    ]


# --- qemu command line -----------------------------------------------------------------------

TCG_ACCEL = Accel("tcg", "test", TCG)


def _append(cmd: list[str]) -> str:
    return cmd[cmd.index("-append") + 1]


def test_microvm_command_shares_the_host_read_only_over_virtio_mmio() -> None:
    cmd = qemu_command(
        "vmlinux",
        "initrd",
        "quiet cgroup_no_v1=all",
        memory="1G",
        smp=2,
        virtfs_root="/",
        accel=TCG_ACCEL,
        machine="microvm",
    )
    assert cmd[:3] == ["qemu-system-x86_64", "-M", "microvm"]
    assert (
        "-no-reboot" in cmd
        and "-nodefaults" in cmd
        and cmd[cmd.index("-serial") : cmd.index("-serial") + 2] == ["-serial", "stdio"]
    )
    fsdev = cmd[cmd.index("-fsdev") + 1]
    assert "path=/," in fsdev and "readonly=on" in fsdev and "security_model=none" in fsdev
    assert cmd[cmd.index("-device") + 1].startswith("virtio-9p-device,")
    append = _append(cmd)
    assert append.startswith("console=ttyS0") and append.endswith("quiet cgroup_no_v1=all")
    if host_tsc_khz():
        assert f"tsc_early_khz={host_tsc_khz()}" in append.split()
    assert cmd[cmd.index("-accel") : cmd.index("-accel") + 2] == [
        "-accel",
        "tcg,thread=multi,tb-size=256",
    ]


def test_q35_command_uses_pci_devices_and_no_tsc_hint() -> None:
    cmd = qemu_command(
        "vmlinux",
        "initrd",
        "",
        memory="512M",
        smp=1,
        virtfs_root="/srv",
        accel=TCG_ACCEL,
        machine="q35",
    )
    assert cmd[cmd.index("-device") + 1].startswith("virtio-9p-pci,")
    assert "tsc_early_khz" not in _append(cmd)
    nofs = qemu_command(
        "vmlinux",
        "initrd",
        "",
        memory="128M",
        smp=1,
        virtfs_root=None,
        accel=TCG_ACCEL,
        machine="q35",
    )
    assert "-fsdev" not in nofs
    with pytest.raises(VMError):
        qemu_command(
            "v", "i", "", memory="1G", smp=1, virtfs_root=None, accel=TCG_ACCEL, machine="pc"
        )


def test_accel_can_be_forced_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONT_VM_ACCEL", "tcg")
    assert choose_accel().name == "tcg" and "PYCONT_VM_ACCEL" in choose_accel().reason
    monkeypatch.delenv("PYCONT_VM_ACCEL")
    if os.path.isdir("/sys/module/kvm_pvm"):
        found = choose_accel()
        assert found.name == "tcg" and "kvm_pvm cannot boot a stock kernel" in found.reason


# --- the guest's command ---------------------------------------------------------------------


def test_command_script_quotes_env_and_cwd(tmp_path: Path) -> None:
    cwd = tmp_path / "a dir with 'quotes'"
    cwd.mkdir()
    value = 'it\'s $HOME `x` "q"\nline 2'
    script = command_script(
        ["sh", "-c", 'printf "%s|%s|%s" "$PWD" "$V" "$HOME"'], str(cwd), {"V": value}
    )
    (tmp_path / "s").write_text(script)
    out = subprocess.run(
        ["/bin/sh", str(tmp_path / "s")], capture_output=True, text=True, check=True
    ).stdout
    assert out == f"{cwd}|{value}|/root"


# --- run_v2 ----------------------------------------------------------------------------------


def test_run_v2_options_are_its_own_and_the_rest_goes_to_pytest() -> None:
    opts, rest = run_v2.split_args(
        ["--vm-timeout", "60", "-m", "cgroup_v2", "--vm-quiet", "-k", "x", "--vm-smp=1", "t/"]
    )
    assert opts == {"timeout": "60", "quiet": "1", "smp": "1"}
    assert rest == ["-m", "cgroup_v2", "-k", "x", "t/"]
    with pytest.raises(SystemExit):
        run_v2.split_args(["--vm-bogus"])


@pytest.mark.parametrize(
    ("line", "counts"),
    [
        (
            "12 passed, 3 skipped, 111 deselected in 24.18s",
            {"passed": 12, "skipped": 3, "deselected": 111},
        ),
        (
            "======= 1 failed, 13 passed, 2 warnings in 95.10s (0:01:35) =======",
            {"failed": 1, "passed": 13, "warning": 2},
        ),
        ("2 errors in 1.00s", {"error": 2}),
        ("============ no tests ran in 0.01s ============", {}),
    ],
)
def test_run_v2_reads_pytests_summary(line: str, counts: dict[str, int]) -> None:
    text = f"collected 12 items\n....\nPYCONT-VM-READY\n{line}\n\nPYCONT-VM-EXIT 0\n"
    assert run_v2.parse_pytest_summary(text) == counts


def test_run_v2_summary_line() -> None:
    line = run_v2.summary_line(
        {"passed": 12, "deselected": 3}, kernel="6.1.0-56-amd64", accel="TCG", boot=4.12, total=95.4
    )
    assert line == (
        "cgroup v2 VM: 12 passed, 0 skipped, 3 deselected "
        "(kernel 6.1.0-56-amd64, TCG, boot 4.1 s, total 95 s)"
    )
    assert run_v2.parse_pytest_summary("no summary\n") is None


def test_run_v2_is_executable_as_a_script() -> None:
    assert shutil.which("python3") is not None
    path = Path(run_v2.__file__)
    out = subprocess.run(["python3", str(path), "--vm-nope"], capture_output=True, text=True)
    assert out.returncode != 0 and "unknown option --vm-nope" in out.stderr
