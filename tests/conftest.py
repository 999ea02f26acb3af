"""Suite-wide setup: a private PYCONT_ROOT, the privileged-test count, and the leak check.

- Every test runs with ``PYCONT_ROOT`` set to a fresh temporary folder (an environment
  variable, so the CLI and the helper processes the tests start inherit it).
- Tests declare their needs with :func:`tests.helpers.requires`; those needing root or user
  namespaces are marked ``privileged`` and the summary says how many of them ran and how many
  were skipped, so a silent skip cannot pass for coverage.
- After the last test, nothing pycont made may be left on the machine (``tests/leaks.py``) and
  the temporary store must hold no container; otherwise the session fails.
- Then the store check (``pycont system check``) runs on every image store of the session that
  is still on disk (the roots given to :func:`tests.helpers.register_root`): an orphan blob or
  layer, a stale temporary or staging folder fails the session too.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import (
    PRIVILEGED_NEEDS,
    SESSION_ROOTS,
    STORE_FINDINGS,
    STORES_CHECKED,
    check_store,
    needs_of,
    register_root,
)

_privileged: set[str] = set()  # node ids of the privileged tests collected
_outcomes: dict[str, str] = {}  # node id -> "ran" | "skipped" | "error"
_skip_reasons: dict[str, str] = {}
_leaks: list[str] = []
_preexisting: list[str] = []  # on the machine before the session started
_foreign: list[str] = []  # made during the session by another pycont store than ours


def pytest_configure(config: pytest.Config) -> None:
    # A shell without job control starts `cmd &` with SIGINT and SIGQUIT ignored (POSIX, "Shell
    # Command Language" 2.11), Python then keeps SIG_IGN, and every child inherits it across
    # exec: the Ctrl-C tests would wait for an interrupt that cannot arrive. A terminal's
    # Ctrl-C is what they model, so the session starts with Python's own handler.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers",
        "privileged: needs root or user namespaces; added by tests.helpers.requires()",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if PRIVILEGED_NEEDS & set(needs_of(item)):
            item.add_marker(pytest.mark.privileged)
            _privileged.add(item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _privileged:
        return
    if report.when == "setup":
        if report.skipped:
            _outcomes[report.nodeid] = "skipped"
            _skip_reasons[report.nodeid] = _reason(report)
        elif report.failed:
            _outcomes[report.nodeid] = "error"
    elif report.when == "call":
        if report.skipped and not hasattr(report, "wasxfail"):
            _outcomes[report.nodeid] = "skipped"
            _skip_reasons[report.nodeid] = _reason(report)
        else:
            _outcomes[report.nodeid] = "ran"


def _reason(report: pytest.TestReport) -> str:
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _rmtree(path: str) -> None:
    """rm -rf, also through folders without permissions (overlayfs leaves work/work mode 000)."""

    def fix(func: Any, p: str, _exc: Any) -> None:
        os.chmod(os.path.dirname(p), stat.S_IRWXU)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, stat.S_IRWXU)
            shutil.rmtree(p, onerror=fix)
        else:
            func(p)

    shutil.rmtree(path, onerror=fix)


def _find_leaks() -> list[str]:
    """tests/leaks.py's find_leaks() when that module exists (another part of the suite)."""
    try:
        leaks = importlib.import_module("tests.leaks")
    except ModuleNotFoundError as err:
        if err.name not in ("tests.leaks", "tests"):
            raise
        return []
    return list(leaks.find_leaks())


def _check_stores() -> None:
    """``pycont system check`` on every registered store still on disk, before removal (the
    stores a test removed itself were checked then: tests.helpers.remove_root)."""
    try:
        importlib.import_module("pycont.images.fsck")
    except ModuleNotFoundError:
        return
    for root in dict.fromkeys(SESSION_ROOTS):
        check_store(root)


def _stop_fork_server() -> None:
    """The API's fork server lives as long as this process; the session is over: stop it."""
    launcher = sys.modules.get("pycont.runtime.launcher")
    shutdown = getattr(launcher, "shutdown", None)
    if shutdown is not None:
        shutdown()


def _stop_cli_servers(folder: str) -> None:
    """The command servers (pycont.cliserver) that the session's `pycont` commands started in
    its own folder: stopped (each ends its running commands first), else killed."""
    try:
        cliserver = importlib.import_module("pycont.cliserver")
    except ModuleNotFoundError:
        return
    # pidfds taken now: a pid reused after a server ended must not be killed below
    fds = []
    for info in cliserver.servers(folder):
        with contextlib.suppress(OSError):
            fds.append(os.pidfd_open(int(info["pid"])))
    cliserver.stop(folder)
    for fd in fds:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        os.close(fd)
    shutil.rmtree(folder, ignore_errors=True)


def _under(path: str) -> bool:
    return any(path == r or path.startswith(r + os.sep) for r in SESSION_ROOTS)


def _is_foreign(leak: str) -> bool:
    """A leftover of another pycont user of this machine (a developer's container in
    /var/lib/pycont, a benchmark): a state folder outside our roots, or a process whose
    environment names another PYCONT_ROOT (or none: the default root). Anything that cannot
    be told apart counts as ours."""
    kind, _, rest = leak.partition(": ")
    if kind in ("state", "network"):
        return not _under(rest)
    if kind == "network device" and rest.startswith("pc0"):  # a store's default bridge
        return rest not in _store_bridges()
    if kind == "process":
        try:
            with open(f"/proc/{rest.split()[0]}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            return False
        roots = [e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"PYCONT_ROOT=")]
        return not roots or not _under(os.path.abspath(roots[0]))
    return False


def _store_bridges() -> set[str]:
    """The default bridge each of this session's stores would have (networks.default_bridge)."""
    from pycont.net.networks import default_bridge

    return {default_bridge(root) for root in SESSION_ROOTS}


def _default_bridges() -> set[str]:
    """The default bridges of this session's stores on this host now: named after each store's
    path (pycont.net.networks.default_bridge). Another pycont user's, on this shared machine,
    is never among them."""
    try:
        return _store_bridges() & set(os.listdir("/sys/class/net"))
    except OSError:
        return set()


def _delete_idle_bridges(names: set[str]) -> None:
    """Delete those of ``names`` that have no port plugged in (no container on them)."""
    idle = set()
    for name in names:
        with contextlib.suppress(OSError):  # gone meanwhile
            if not os.listdir(f"/sys/class/net/{name}/brif"):
                idle.add(name)
    if not idle or os.geteuid() != 0:
        return
    from pycont.net import netlink

    with netlink.host() as ipr:
        for name in sorted(idle):
            netlink.delete_link(ipr, name)


@pytest.fixture(autouse=True)
def _stores_default_bridges() -> Iterator[None]:
    """A store's default bridge stays after its last container, as docker0 does
    (pycont.net.networks). The ones a test's stores made go when it ends: a session of many
    stores then neither runs out of subnets (docker's pools hold 31) nor leaves a device."""
    before = _default_bridges()
    yield
    _delete_idle_bridges(_default_bridges() - before)


@pytest.fixture(scope="session", autouse=True)
def pycont_root() -> Iterator[str]:
    """A fresh PYCONT_ROOT for the whole session; checked for leaks, then removed.

    Objects that were already on the machine before the session (another run, a benchmark)
    are not this session's leaks: they are listed as a note, without failing."""
    previous = os.environ.get("PYCONT_ROOT")
    root = tempfile.mkdtemp(prefix="pycont-tests-")
    os.environ["PYCONT_ROOT"] = register_root(root)
    # The `pycont` commands of the session hand their work to a command server of its own
    # (pycont.client), never to one in /run/pycont: stopped below.
    cli_servers = tempfile.mkdtemp(prefix="pycont-cli-servers-")
    os.environ["PYCONT_CLI_SERVER_DIR"] = cli_servers
    before = set(_find_leaks())
    _preexisting.extend(sorted(before))
    bridges_before = _default_bridges()
    try:
        yield root
    finally:
        _stop_fork_server()
        _stop_cli_servers(cli_servers)
        # made by a fixture wider than one test (module, session), idle now
        _delete_idle_bridges(_default_bridges() - bridges_before)
        del os.environ["PYCONT_CLI_SERVER_DIR"]
        containers = os.path.join(root, "containers")
        left = sorted(os.listdir(containers)) if os.path.isdir(containers) else []
        _leaks.extend(f"container left in {containers}: {cid}" for cid in left)
        for leak in _find_leaks():
            if leak not in before:
                (_foreign if _is_foreign(leak) else _leaks).append(leak)
        _check_stores()
        if previous is None:
            del os.environ["PYCONT_ROOT"]
        else:
            os.environ["PYCONT_ROOT"] = previous
        _rmtree(root)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if (_leaks or any(orphan for orphan, _ in STORE_FINDINGS)) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    tr = terminalreporter
    ran = sum(1 for o in _outcomes.values() if o == "ran")
    errors = sum(1 for o in _outcomes.values() if o == "error")
    skipped = sum(1 for o in _outcomes.values() if o == "skipped")
    line = f"privileged tests: {ran} ran, {skipped} skipped"
    if errors:
        line += f", {errors} errored before running"
    tr.write_sep("-", line, yellow=bool(skipped), green=not skipped and not errors)
    for reason in sorted(set(_skip_reasons.values())):
        count = sum(1 for r in _skip_reasons.values() if r == reason)
        tr.write_line(f"  skipped {count}: {reason}")
    if _leaks:
        tr.write_sep("=", f"leak check: {len(_leaks)} pycont object(s) left behind", red=True)
        for leak in _leaks:
            tr.write_line(f"  {leak}")
    else:
        tr.write_line("leak check: nothing left behind")
    orphans = [line for orphan, line in STORE_FINDINGS if orphan]
    if orphans:
        tr.write_sep("=", f"store check: {len(orphans)} orphan(s) left in the stores", red=True)
        for line in orphans:
            tr.write_line(f"  {line}")
    else:
        tr.write_line(f"store check: 0 orphans in {len(STORES_CHECKED)} store(s)")
    for line in (line for orphan, line in STORE_FINDINGS if not orphan):
        tr.write_line(f"note: store check: {line}")
    if _foreign:
        tr.write_line(f"note: {len(_foreign)} pycont object(s) of another pycont store:")
        for leak in _foreign:
            tr.write_line(f"  {leak}")
    if _preexisting:
        tr.write_line(f"note: {len(_preexisting)} pycont object(s) predate this session:")
        for leak in _preexisting:
            tr.write_line(f"  {leak}")
