"""The cell guard of a chapter that cannot run here: one labelled line per failing cell, no
traceback, no stop of "Run All"; values still displayed, interrupts still interrupt."""

from __future__ import annotations

import pytest

from pycont import degrade


def the_shell():
    """The test suite's one IPython shell (the integration tests use the same singleton: an
    InteractiveShell.instance() of our own would make their TerminalInteractiveShell fail)."""
    from IPython.testing import globalipapp

    globalipapp.start_ipython()
    return globalipapp.get_ipython()


@pytest.fixture
def shell():
    sh = the_shell()
    degrade.install("namespaces", "unprivileged: no user namespaces", sh)
    yield sh
    degrade.remove(sh)


def test_a_failing_cell_leaves_one_line_and_succeeds(shell, capsys) -> None:
    r = shell.run_cell("x = 1\nraise PermissionError(1, 'clone: Operation not permitted')")
    assert r.success
    assert capsys.readouterr().out == (
        "skipped: needs namespaces; here: unprivileged: no user namespaces "
        "(PermissionError: [Errno 1] clone: Operation not permitted)\n"
    )
    assert shell.user_ns["x"] == 1  # what ran before the failure stays done


def test_no_name_error_cascade(shell, capsys) -> None:
    r = shell.run_cell("box.pid")
    assert r.success
    assert "(NameError: name 'box' is not defined)" in capsys.readouterr().out


def test_the_last_value_is_still_displayed(shell) -> None:
    r = shell.run_cell("a = 20\na * 2 + 2", store_history=True)
    assert r.success and r.result == 42


def test_a_cell_without_error_is_untouched(shell, capsys) -> None:
    r = shell.run_cell("for i in range(2):\n    print(i)")
    assert r.success and capsys.readouterr().out == "0\n1\n"


def test_interrupts_are_not_swallowed(shell) -> None:
    r = shell.run_cell("raise KeyboardInterrupt")
    assert not r.success
    assert isinstance(r.error_in_exec, KeyboardInterrupt)


def test_guard_is_installed_once_and_removed() -> None:
    sh = the_shell()
    degrade.install("a", "b", sh)
    degrade.install("c", "d", sh)
    assert sum(isinstance(t, degrade._Guard) for t in sh.ast_transformers) == 1
    assert degrade.active(sh)
    degrade.remove(sh)
    assert not degrade.active(sh)
    assert not sh.run_cell("undefined_name").success


def test_skipped_line_without_message() -> None:
    assert degrade.skipped_line("root", "uid 1000", ValueError()) == (
        "skipped: needs root; here: uid 1000 (ValueError)"
    )
