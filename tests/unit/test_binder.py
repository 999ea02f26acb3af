"""binder/ against what the chapters import and call, so that Binder builds what they need.

repo2docker reads ``binder/``: ``runtime.txt`` (the Python), ``apt.txt`` (Ubuntu packages),
``requirements.txt`` (pip, from the repository's root) and ``postBuild`` (run once, as the
notebook user). The chapters' code cells come from their sources (``notebooks/_src/chNN.py``,
built by ``build.py``, the exercises' solutions included); this parses them (``ast``, with the
IPython lines set aside) for

- the modules they import: each must be the standard library, pycont, or a distribution that
  ``requirements.txt`` installs (the project's dependencies and the extras it names);
- the programs they run on the host (``subprocess``, ``shutil.which``, ``!`` lines): each must be
  in :data:`PACKAGE_OF`, and its package in ``apt.txt`` and in the course's Debian list in
  ``scripts/bootstrap.sh`` (the same names on Debian and Ubuntu).

``%%container`` and ``%%vm`` cells run inside busybox, not on the host: their programs are
busybox applets and need nothing more.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BINDER = REPO / "binder"
SRC = REPO / "notebooks" / "_src"

# A program a chapter runs on the host -> the Debian/Ubuntu package that ships it (the same name
# on both). None: in every Debian and Ubuntu image already (Essential or required: coreutils,
# mount, apt, dpkg), or the environment's own (Python, pycont's entry points).
PACKAGE_OF: dict[str, str | None] = {
    "ps": "procps",
    "lsns": "util-linux",
    "setpriv": "util-linux",
    "ipcmk": "util-linux",
    "ipcrm": "util-linux",
    "unshare": "util-linux",
    "capsh": "libcap2-bin",
    "docker-registry": "docker-registry",
    "podman": "podman",
    "qemu-system-x86_64": "qemu-system-x86",
    "busybox": "busybox-static",
    "ip": "iproute2",
    "tc": "iproute2",
    "true": None,
    "sync": None,
    "rm": None,
    "umount": None,
    "apt-get": None,
    "dpkg": None,
    "python3": None,
    "pycont": None,
    "pycont-oci": None,
}
# Packages no chapter line names, and why they are needed all the same.
IMPLICIT = {
    "busybox-static": "the busybox image every chapter runs, and the lab VM's initramfs",
    "libseccomp2": "libseccomp.so.2, which pyseccomp loads for Docker's default profile",
    "qemu-system-x86": "chapter 09's VMs (pycont.vm) and, on Binder, the lab VM",
    "e2fsprogs": "mkfs.ext4 for the lab VM's /tmp (user xattrs: rootless overlay, chapter 04)",
    "gcc": "builds pycont-mon, the monitor of every detached container (pycont/runtime/mon.c)",
    "libc6-dev": "the C library and headers pycont-mon is built against",
}
# Binder only: postBuild checks Debian's kernel package with Debian's keys (the image is Ubuntu).
BINDER_ONLY = {"debian-archive-keyring": "postBuild's Debian kernel for the lab VM"}

SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}


# ---- the chapters' code ---------------------------------------------------------------------


def src_module(name: str) -> Any:
    """A module of notebooks/_src (build, skeleton, chNN), imported as build.py imports them."""
    if name != "skeleton":
        pytest.importorskip("nbformat", reason="build.py needs nbformat (the notebook extra)")
    sys.path.insert(0, str(SRC))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(SRC))


def chapter_cells() -> dict[str, list[str]]:
    """Every code cell of every chapter, solutions included: {"ch01": [source, ...], ...}."""
    build = src_module("build")
    cells: dict[str, list[str]] = {}
    for name in build.SOURCES:
        mod = src_module(name)
        sources = [c.source for c in build.cells_of(mod) if c.kind == "code"]
        for ex in getattr(mod, "EXERCISES", ()):
            sources += [s.strip("\n") for s in ex.solutions]
        cells[name] = sources
    return cells


def python_of(cell: str) -> tuple[str, list[str]]:
    """(the cell as Python, its ``!`` shell lines). A cell magic's body is not host Python."""
    if cell.lstrip().startswith("%%"):
        return "", []
    lines, shell = [], []
    for line in cell.splitlines():
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("!"):
            shell.append(stripped[1:])
            lines.append(f"{indent}pass")
        elif stripped.startswith("%"):
            lines.append(f"{indent}pass")
        else:
            lines.append(line)
    return "\n".join(lines), shell


def _const_str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def imports_and_programs(cell: str) -> tuple[set[str], set[str]]:
    """Top-level modules the cell imports, programs it runs on the host."""
    source, shell = python_of(cell)
    modules: set[str] = set()
    programs = {line.split()[0] for line in shell if line.split()}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(func, "value", None)
            owner_name = getattr(owner, "id", "")
            if name == "which" and owner_name == "shutil" and node.args:
                found = _const_str(node.args[0])
                if found:
                    programs.add(found)
            elif name in SUBPROCESS_CALLS and owner_name == "subprocess" and node.args:
                argv = node.args[0]
                if isinstance(argv, ast.List) and argv.elts:
                    first = _const_str(argv.elts[0])
                    if first:
                        programs.add(first)
    return modules, programs


def chapter_needs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({module: chapters}, {program: chapters}) over all chapters."""
    modules: dict[str, set[str]] = {}
    programs: dict[str, set[str]] = {}
    for chapter, cells in chapter_cells().items():
        for cell in cells:
            mods, progs = imports_and_programs(cell)
            for m in mods:
                modules.setdefault(m, set()).add(chapter)
            for p in progs:
                programs.setdefault(os.path.basename(p), set()).add(chapter)
    return modules, programs


# ---- binder/ as repo2docker reads it ----------------------------------------------------------


def _lines(path: Path) -> Iterator[str]:
    for line in path.read_text().splitlines():
        line = line.partition("#")[0].strip()  # repo2docker's own parsing of apt.txt
        if line:
            yield line


def apt_txt() -> list[str]:
    return list(_lines(BINDER / "apt.txt"))


def course_apt_packages() -> list[str]:
    text = (REPO / "scripts" / "bootstrap.sh").read_text()
    m = re.search(r"^PYCONT_COURSE_APT_PACKAGES=\(([^)]*)\)", text, re.M)
    assert m, "scripts/bootstrap.sh: no PYCONT_COURSE_APT_PACKAGES=(...)"
    return m.group(1).split()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(spec: str) -> str:
    return _norm(re.split(r"[\s\[<>=!~;@]", spec, maxsplit=1)[0])


def pyproject() -> dict[str, Any]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def required_distributions() -> tuple[set[str], list[str]]:
    """(distribution names requirements.txt installs, the extras of the project it names)."""
    project = pyproject()["project"]
    names: set[str] = set()
    extras_named: list[str] = []
    for line in _lines(BINDER / "requirements.txt"):
        spec = line.removeprefix("-e").strip()
        m = re.fullmatch(r"\.(?:\[([\w,\s-]+)\])?", spec)
        if m:  # the project itself, from the repository's root
            names.add(_norm(project["name"]))
            names |= {_req_name(d) for d in project["dependencies"]}
            for extra in (m.group(1) or "").split(","):
                if extra.strip():
                    extras_named.append(extra.strip())
                    names |= {_req_name(d) for d in project["optional-dependencies"][extra.strip()]}
        else:
            names.add(_req_name(spec))
    return names, extras_named


# ---- the tests --------------------------------------------------------------------------------


def test_the_parser_sees_imports_programs_and_skips_cell_magics() -> None:
    cell = (
        "import os, json\nfrom pycont.vm import boot\n%load_ext pycont\n!ps -o pid {pid}\n"
        "if shutil.which('capsh'):\n    subprocess.run(['capsh', '--print'])\n"
        "subprocess.run([sys.executable, '-m', 'pycont'])"
    )
    assert imports_and_programs(cell) == ({"os", "json", "pycont"}, {"ps", "capsh"})
    assert imports_and_programs("%%container busybox\nip link\nimport nothing") == (set(), set())


def test_runtime_txt_is_the_python_pyproject_asks_for() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert runtime == "python-3.11"
    assert pyproject()["project"]["requires-python"] == ">=3.11"


def test_requirements_install_the_project_with_its_notebook_extra() -> None:
    names, extras = required_distributions()
    assert "pycont" in names, "binder/requirements.txt must install the project (-e .[notebook])"
    assert extras == ["notebook"], f"extras named: {extras}"


def test_requirements_cover_every_module_the_chapters_import() -> None:
    modules, _ = chapter_needs()
    assert "pycont" in modules
    installed, _ = required_distributions()
    dists = importlib.metadata.packages_distributions()
    missing = {}
    for module, chapters in sorted(modules.items()):
        if module in sys.stdlib_module_names or module == "pycont":
            continue
        candidates = {_norm(d) for d in dists.get(module, [])}
        if not candidates:
            missing[module] = f"not installed here either ({sorted(chapters)})"
        elif not candidates & installed:
            missing[module] = f"from {sorted(candidates)}, imported by {sorted(chapters)}"
    assert not missing, f"binder/requirements.txt installs nothing for: {missing}"


def test_every_program_the_chapters_run_is_known_and_installed() -> None:
    _, programs = chapter_needs()
    unknown = {p: sorted(c) for p, c in programs.items() if p not in PACKAGE_OF}
    assert not unknown, f"add these programs to PACKAGE_OF (program -> package): {unknown}"
    needed = {PACKAGE_OF[p]: sorted(c) for p, c in programs.items() if PACKAGE_OF[p]}
    apt, course = set(apt_txt()), set(course_apt_packages())
    assert not {p: c for p, c in needed.items() if p not in apt}, "missing from binder/apt.txt"
    assert not {p: c for p, c in needed.items() if p not in course}, (
        "missing from PYCONT_COURSE_APT_PACKAGES in scripts/bootstrap.sh"
    )
    # And nothing else: each package in the lists is there for a reason this test knows.
    known = set(needed) | set(IMPLICIT)
    assert set(IMPLICIT) <= apt and set(IMPLICIT) <= course
    assert set(BINDER_ONLY) <= apt
    assert apt - known - set(BINDER_ONLY) == set(), "binder/apt.txt: packages no chapter needs"
    assert course - known == set(), "PYCONT_COURSE_APT_PACKAGES: packages no chapter needs"


def _read(name: str) -> str:
    path = BINDER / name
    assert os.access(path, os.X_OK), f"binder/{name} must be executable (repo2docker runs it)"
    subprocess.run(["bash", "-n", str(path)], check=True)
    return path.read_text()


def test_post_build_installs_the_kernelspec_settings_and_the_vm_kernel() -> None:
    post = _read("postBuild")
    assert "bash scripts/lab-setup.sh" in post
    assert "ensure_kernel(" in post and "APT_CONFIG=" in post
    assert "HOME/.cache/pycont/vm" in post
    # The same cache at run time: binder/start exports it around the Jupyter server.
    start = _read("start")
    assert 'export PYCONT_VM_CACHE="${PYCONT_VM_CACHE:-$HOME/.cache/pycont/vm}"' in start
    assert 'exec "$@"' in start
    setup = (REPO / "scripts" / "lab-setup.sh").read_text()
    assert '"$py" -m pycont.vm.labkernel install --sys-prefix' in setup
    assert "overrides.d/pycont.json" in setup and "jupyterlab-settings.json" in setup


def test_jupyterlab_settings_turn_the_news_and_update_check_off() -> None:
    with open(REPO / "scripts" / "jupyterlab-settings.json") as f:
        settings = json.load(f)
    notification = settings["@jupyterlab/apputils-extension:notification"]
    assert notification == {"checkForUpdates": False, "fetchNews": "false"}
    jupyterlab = pytest.importorskip("jupyterlab.commands")
    schema_path = (
        Path(jupyterlab.get_app_dir())
        / "schemas"
        / "@jupyterlab"
        / "apputils-extension"
        / "notification.json"
    )
    if not schema_path.exists():
        pytest.skip(f"no {schema_path} to check the setting names against")
    schema = json.loads(schema_path.read_text())
    for key, value in notification.items():
        prop = schema["properties"][key]
        assert value in prop.get("enum", [value]), f"{key}: {value!r} not in {prop}"


def test_the_kernelspec_is_what_the_notebooks_name(tmp_path: Path) -> None:
    pytest.importorskip("ipykernel")
    subprocess.run(
        [sys.executable, "-m", "pycont.vm.labkernel", "install", "--prefix", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    spec = json.loads((tmp_path / "share/jupyter/kernels/pycont/kernel.json").read_text())
    named = {"name": "pycont", "display_name": spec["display_name"], "language": spec["language"]}
    assert named == src_module("build").KERNELSPEC


def test_committed_notebooks_carry_the_course_kernel_metadata() -> None:
    """JupyterLab writes the running kernel's kernelspec and language_info into a notebook it
    opens: committed metadata that differs marks the notebook modified on open."""
    build = src_module("build")
    wrong = {}
    for _, _, file in build.CHAPTERS:
        if not file:
            continue
        meta = json.loads((REPO / "notebooks" / file).read_text())["metadata"]
        if meta.get("kernelspec") != build.KERNELSPEC:
            wrong[file] = f"kernelspec {meta.get('kernelspec')}"
        elif meta.get("language_info") != build.LANGUAGE_INFO:
            wrong[file] = f"language_info {meta.get('language_info')}"
    assert not wrong, f"notebook metadata is not build.KERNELSPEC/LANGUAGE_INFO: {wrong}"


def _github_origin() -> str | None:
    try:
        url = subprocess.run(
            ["git", "-C", str(REPO), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return None
    m = re.match(r"(?:https://github\.com/|git@github\.com:)([\w.-]+/[\w.-]+?)(?:\.git)?/?$", url)
    return m.group(1) if m else None


def test_every_chapter_has_its_binder_badge_in_the_readme_and_the_index() -> None:
    skeleton = src_module("skeleton")
    origin = _github_origin()
    if origin is not None:  # a public address: the badges must use it, not the placeholder
        assert origin == skeleton.BINDER_REPO, f"set BINDER_REPO = {origin!r} in skeleton.py"
    chapters = [
        f for f in sorted(os.listdir(REPO / "notebooks")) if re.match(r"\d\d-.*\.ipynb$", f)
    ]
    readme = (REPO / "README.md").read_text()
    index = (REPO / "notebooks" / "00-index.ipynb").read_text()
    no_badge = [f for f in chapters if skeleton.binder_url(f) not in readme]
    assert not no_badge, f"README.md has no Binder badge for {no_badge}"
    no_badge = [f for f in chapters[1:] if skeleton.binder_url(f) not in index]
    assert not no_badge, f"notebooks/00-index.ipynb has no Binder badge for {no_badge}"
