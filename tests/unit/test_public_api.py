"""The public surface: each facade's ``__all__`` names what it really exports, and the CLI's
help lists every verb.

A facade (``pycont``, ``pycont.images``, ``pycont.cgroups``) re-exports names from private
modules, some of them lazily (module ``__getattr__``); ``__all__`` is its contract. Each check
that imports runs in a fresh interpreter, so a lazy name resolves on its own, not because an
earlier test happened to import its module.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
from typing import Any

import pytest

import pycont
from tests.helpers import REPO, cli

FACADES = ["pycont", "pycont.images", "pycont.cgroups"]

VERBS = [
    "run",
    "exec",
    "start",
    "restart",
    "ps",
    "logs",
    "stop",
    "kill",
    "rm",
    "wait",
    "inspect",
    "top",
    "update",
    "stats",
    "pause",
    "unpause",
    "images",
    "history",
    "tag",
    "rmi",
    "image",
    "commit",
    "diff",
    "volume",
    "system",
    "doctor",
]


def fresh(code: str) -> Any:
    """Run ``code`` in a new interpreter (the repo on its path); it prints one JSON value."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def modules_with_all() -> list[str]:
    """Every pycont module that defines ``__all__`` (found in the source, nothing imported)."""
    names = ["pycont"] + [
        m.name
        for m in pkgutil.walk_packages(pycont.__path__, "pycont.")
        if not m.name.endswith("__main__")  # runs the CLI when imported
    ]
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        with open(spec.origin, encoding="utf-8") as f:
            if re.search(r"^__all__\b", f.read(), re.MULTILINE):
                found.append(name)
    return found


def type_checking_imports(module: str) -> set[str]:
    """Names imported under ``if TYPE_CHECKING:`` in a module's source: what mypy sees."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.ImportFrom):
                    names.update(a.asname or a.name for a in stmt.names)
    return names


# -- facades -------------------------------------------------------------------------------
@pytest.mark.parametrize("module", FACADES)
def test_every_name_in_all_resolves_in_a_fresh_interpreter(module: str) -> None:
    result = fresh(
        f"import importlib, json; m = importlib.import_module({module!r}); "
        "bad = []\n"
        "for n in m.__all__:\n"
        "    try:\n"
        "        getattr(m, n)\n"
        "    except AttributeError as e:\n"
        "        bad.append(f'{n}: {e}')\n"
        "print(json.dumps(bad))"
    )
    assert result == [], f"{module}.__all__ names that do not resolve: {result}"


@pytest.mark.parametrize("module", FACADES)
def test_star_import_gives_exactly_all(module: str) -> None:
    got = fresh(
        f"import json; ns = {{}}; exec('from {module} import *', ns); "
        "print(json.dumps(sorted(k for k in ns if k != '__builtins__')))"
    )
    mod = importlib.import_module(module)
    assert got == sorted(mod.__all__)


@pytest.mark.parametrize("module", FACADES)
def test_all_lists_every_public_class_and_function_defined_in_the_facade(module: str) -> None:
    mod = importlib.import_module(module)
    defined = {
        n
        for n, v in vars(mod).items()
        if not n.startswith("_")
        and (inspect.isclass(v) or inspect.isfunction(v))
        and v.__module__ == module
    }
    assert defined - set(mod.__all__) == set(), f"defined in {module} but not in __all__"


@pytest.mark.parametrize("module", FACADES)
def test_lazy_names_are_in_all_and_match_what_mypy_sees(module: str) -> None:
    mod = importlib.import_module(module)
    lazy = dict(getattr(mod, "_LAZY", {}))
    assert set(lazy) - set(mod.__all__) == set(), "lazy names missing from __all__"
    # A lazy name is imported for mypy under TYPE_CHECKING; a difference means one of the two
    # lists was edited without the other.
    assert type_checking_imports(module) == set(lazy)
    wrong = fresh(
        f"import importlib, json; m = importlib.import_module({module!r}); "
        f"lazy = {lazy!r}; "
        "print(json.dumps(sorted(n for n, src in lazy.items() "
        "if getattr(m, n) is not getattr(importlib.import_module(src), n))))"
    )
    assert wrong == [], f"lazy names that resolve to something else: {wrong}"


@pytest.mark.parametrize("module", FACADES)
def test_no_exported_name_is_also_a_submodule(module: str) -> None:
    # Importing a submodule binds it as an attribute of its package: an exported name that is
    # also a submodule's name becomes the module as soon as anything imports the submodule.
    mod = importlib.import_module(module)
    submodules = {m.name for m in pkgutil.iter_modules(mod.__path__)}
    assert sorted(set(mod.__all__) & submodules) == []


def test_pycont_stats_is_the_function_even_after_its_module_is_imported() -> None:
    kind = fresh(
        "import json, pycont; from pycont.stats_table import binary_size; "
        "print(json.dumps(type(pycont.stats).__name__))"
    )
    assert kind == "function", "pycont.stats() is 'module' object is not callable"


def test_pycont_exports_the_whole_exception_tree() -> None:
    from pycont import errors

    tree = {
        n
        for n, v in vars(errors).items()
        if inspect.isclass(v) and issubclass(v, errors.PycontError)
    }
    assert tree - set(pycont.__all__) == set()
    for n in tree:
        assert getattr(pycont, n) is getattr(errors, n)


def test_images_exceptions_are_the_ones_of_the_tree() -> None:
    """One exception tree: pycont.images re-exports the classes of pycont.errors, not copies."""
    import pycont.images

    for n in ("ImageInUse", "CorruptBlob", "LayerError"):
        assert getattr(pycont.images, n) is getattr(pycont, n)


def test_importing_pycont_loads_nothing_heavy() -> None:
    # The docstring's promise: the CLI and the shim start fast.
    loaded = fresh(
        "import json, sys, pycont; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pycont'))))"
    )
    assert loaded == ["pycont", "pycont.errors"]


def test_importing_pycont_images_loads_no_tar_or_busybox_code() -> None:
    loaded = fresh(
        "import json, sys, pycont.images; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m in ('tarfile', 'pycont.images.busybox', 'pycont.images._tarwrite'))))"
    )
    assert loaded == []


# -- every module with an __all__ ----------------------------------------------------------
@pytest.mark.parametrize("module", modules_with_all())
def test_all_has_no_duplicates_and_every_name_resolves(module: str) -> None:
    mod = importlib.import_module(module)
    names = list(mod.__all__)
    assert len(names) == len(set(names)), f"duplicates in {module}.__all__"
    assert [n for n in names if not hasattr(mod, n)] == []


# -- the CLI ---------------------------------------------------------------------------------
def help_commands(text: str) -> list[str]:
    """The sub-commands an argparse help lists under COMMAND (four spaces, the name, help;
    a long name alone on its line, its help on the next)."""
    return re.findall(r"^ {4}([a-z][a-z-]*)(?: |$)", text, re.MULTILINE)


def test_top_level_help_lists_every_verb() -> None:
    from pycont import cli as cli_mod

    proc = cli("--help")
    assert proc.returncode == 0, proc.stderr
    listed = help_commands(proc.stdout)
    assert set(VERBS) - set(listed) == set(), "verbs missing from `pycont --help`"
    assert sorted(listed) == sorted(cli_mod.VERB_NAMES)  # and the verbs it knows, no others
    assert len(listed) == len(set(listed))


def test_every_verb_has_a_handler() -> None:
    from pycont import cli as cli_mod

    cli_mod.build_parser()  # every verb, in every verb module of the cli package
    assert set(cli_mod.VERB_NAMES) - set(cli_mod.VERBS) == set()


@pytest.mark.parametrize("verb", VERBS)
def test_each_verb_has_its_own_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    from pycont import cli as cli_mod

    with pytest.raises(SystemExit) as exited:
        cli_mod.main([verb, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: pycont {verb} ")


@pytest.mark.parametrize(
    ("verb", "subverbs"),
    [
        ("image", ["ls", "rm", "inspect", "history", "tag", "prune"]),
        ("volume", ["create", "ls", "inspect", "rm", "prune"]),
        ("system", ["df", "prune"]),
    ],
)
def test_group_verbs_list_their_subcommands(verb: str, subverbs: list[str]) -> None:
    proc = cli(verb, "--help")
    assert proc.returncode == 0, proc.stderr
    # A sub-command given without help= is not listed at all (the metavar hides the choices):
    # `pycont volume --help` would not tell a user that `volume create` exists.
    missing = set(subverbs) - set(help_commands(proc.stdout))
    assert missing == set(), f"`pycont {verb} --help` does not list {sorted(missing)}"
