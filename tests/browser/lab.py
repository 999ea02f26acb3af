"""What the browser tests share: a JupyterLab server, headless Chromium through Selenium, waits.

Nothing here touches the network: the server listens on 127.0.0.1 with its news feed and update
check off, Chromium runs with the flags that keep it from calling home (the machine's network is
closed, and an attempt costs time), and Selenium is handed Debian's chromedriver and chromium
explicitly so that Selenium Manager never runs (it would try to download a driver).

Every process started here is tracked by pid and ended by pid, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
APT_PACKAGES = ("chromium", "chromium-driver")
# From the machine notes: without the background-networking flags Chromium's connections are
# refused by the closed network many at a time; as root it needs --no-sandbox.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


class Timeout(AssertionError):
    pass


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.1,
    not_yet: tuple[type[BaseException], ...] = (Exception,),
) -> T:
    """Poll ``check`` until it returns something truthy; raise :class:`Timeout` naming ``what``.

    Exceptions of the ``not_yet`` kinds count as "not yet" (a DOM node replaced in between, a
    server not listening yet); the last one is named in the timeout message."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
        except not_yet as err:
            last_error = err
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f" (last error: {last_error!r})" if last_error else ""
            raise Timeout(f"timed out after {timeout:g} s waiting for {what}{extra}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# processes


def alive(pid: int) -> bool:
    """True while ``pid`` runs: not absent, not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, grandchildren, ...), from /proc."""
    parent: dict[int, int] = {}
    for p in _pids():
        try:
            with open(f"/proc/{p}/stat") as f:
                parent[p] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return {p for p in found if alive(p)}


def pids_with_cmdline(needle: str) -> set[int]:
    """Live processes whose command line contains ``needle`` (not this process)."""
    found = set()
    raw = needle.encode()
    for p in _pids():
        if p == os.getpid():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if raw in f.read() and alive(p):
                    found.add(p)
        except OSError:
            continue
    return found


def pids_with_env(key: str, value: str) -> set[int]:
    """Live processes whose environment has ``key=value`` (e.g. a private PYCONT_ROOT)."""
    entry = f"{key}={value}".encode()
    found = set()
    for p in _pids():
        if p == os.getpid():
            continue
        try:
            with open(f"/proc/{p}/environ", "rb") as f:
                if entry in f.read().split(b"\0") and alive(p):
                    found.add(p)
        except OSError:
            continue
    return found


def pids_using(path: str) -> set[int]:
    """Live processes that hold ``path`` or something under it as their root, working folder,
    executable or an open file, or name it in their command line or environment: what a
    container (its root is its rootfs), a VM (its disk) or a shim of a private PYCONT_ROOT
    left behind. Not this process."""
    prefix = os.path.abspath(path)
    raw = prefix.encode()

    def under(p: str) -> bool:
        return p == prefix or p.startswith(prefix + "/")

    found = set()
    for p in _pids():
        if p == os.getpid():
            continue
        try:
            links = [os.readlink(f"/proc/{p}/{n}") for n in ("root", "cwd", "exe")]
            links += [os.readlink(f"/proc/{p}/fd/{fd}") for fd in os.listdir(f"/proc/{p}/fd")]
            with open(f"/proc/{p}/cmdline", "rb") as f:
                text = f.read()
            with open(f"/proc/{p}/environ", "rb") as f:
                text += b"\0" + f.read()
        except OSError:
            continue
        if (any(under(link) for link in links) or raw in text) and alive(p):
            found.add(p)
    return found


def mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace (proc_pid_mountinfo(5): the
    fifth field, with space, tab, newline and backslash escaped as octal)."""
    prefix = os.path.abspath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            for esc, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
                point = point.replace(esc, ch)
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def describe(pids: Iterable[int]) -> list[str]:
    out = []
    for p in sorted(pids):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = "?"
        out.append(f"{p}: {cmd[:160]}")
    return out


def end_processes(pids: Iterable[int], grace: float = 5.0) -> list[str]:
    """SIGTERM, then SIGKILL after ``grace`` s, each of ``pids`` (ones this test started).
    Returns a description of those that had to be ended."""
    pids = {p for p in pids if alive(p)}
    if not pids:
        return []
    described = describe(pids)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    for p in pids:
        if alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    return described


def rmtree(path: str) -> None:
    """rm -rf, also through folders without permissions (overlayfs leaves work/work mode 000)."""

    def fix(func: Any, p: str, _exc: Any) -> None:
        os.chmod(os.path.dirname(p), stat.S_IRWXU)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, stat.S_IRWXU)
            shutil.rmtree(p, onerror=fix)
        else:
            func(p)

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=fix)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# Chromium and chromedriver from Debian


def ensure_chromium() -> str | None:
    """Install Debian's chromium and chromium-driver when missing. Returns None when both are
    there, else why they cannot be (the reason to skip with)."""
    if os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK):
        return None
    if os.geteuid() != 0:
        return f"{CHROMIUM} or {CHROMEDRIVER} missing, and installing them needs root"
    if not shutil.which("apt-get"):
        return f"{CHROMIUM} or {CHROMEDRIVER} missing, and there is no apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # With recommends, as the machine notes' working install (fonts for the page's text);
    # another apt run holding the lock is waited for rather than failed on.
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-y"]
    cmd = [*apt, "install", *APT_PACKAGES]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        # The package lists may be missing or stale (a fresh container): update once, retry.
        upd = subprocess.run([*apt, "update"], env=env, capture_output=True, text=True, timeout=600)
        if upd.returncode == 0:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        else:
            proc = upd
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "W:"))] or lines[-3:]
        return f"apt-get install {' '.join(APT_PACKAGES)} failed: {' | '.join(errors)}"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"apt-get install {' '.join(APT_PACKAGES)} succeeded but {path} is missing"
    return None


class Browser:
    """Headless Chromium driven by Debian's chromedriver; every process of it ended on close."""

    def __init__(self, profile_dir: str, log_path: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile_dir = profile_dir
        os.makedirs(profile_dir, exist_ok=True)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={profile_dir}")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # An explicit driver path: Selenium Manager (which downloads drivers) is never run.
        self.service = Service(executable_path=CHROMEDRIVER, log_output=log_path)
        self.driver = webdriver.Chrome(service=self.service, options=opts)
        self.driver.set_script_timeout(20)
        self.driver_pid = self.service.process.pid
        self.console: list[dict[str, Any]] = []

    def processes(self) -> set[int]:
        """chromedriver, the browser and all its helpers (renderers, zygotes, GPU, network)."""
        pids = {self.driver_pid} | descendants(self.driver_pid)
        return {p for p in pids if alive(p)} | pids_with_cmdline(self.profile_dir)

    def take_console(self) -> list[dict[str, Any]]:
        with contextlib.suppress(Exception):
            self.console.extend(self.driver.get_log("browser"))
        return self.console

    def close(self) -> list[str]:
        """Quit, then wait for every process of the browser to end. Returns those that had to
        be killed (a leak to report)."""
        pids = self.processes()
        self.take_console()
        with contextlib.suppress(Exception):
            self.driver.quit()
        with contextlib.suppress(Timeout):
            wait_until(
                lambda: not any(alive(p) for p in pids | self.processes()),
                timeout=10,
                what="chromium and chromedriver to exit",
            )
        return end_processes(pids | self.processes())


# ---------------------------------------------------------------------------------------------
# JupyterLab


class JupyterServer:
    """``jupyter lab`` from this interpreter's environment, on 127.0.0.1, isolated from the
    user's Jupyter and IPython configuration, with no call to the network."""

    def __init__(self, base: str, root_dir: str, env: dict[str, str]) -> None:
        self.base = base
        self.root_dir = root_dir
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(base, "jupyter-server.log")
        dirs = {
            name: os.path.join(base, "jupyter", name)
            for name in ("config", "data", "runtime", "ipython", "settings", "workspaces")
        }
        for d in dirs.values():
            os.makedirs(d, exist_ok=True)
        self._write_settings(dirs["settings"])
        self.env = dict(
            env,
            JUPYTER_CONFIG_DIR=dirs["config"],
            JUPYTER_DATA_DIR=dirs["data"],
            JUPYTER_RUNTIME_DIR=dirs["runtime"],
            IPYTHONDIR=dirs["ipython"],
            # The venv's bin first: the kernel and the magics' subprocesses use this env.
            PATH=os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")]),
        )
        self.cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--allow-root",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root_dir}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class="
            "jupyterlab.handlers.announcements.NeverCheckForUpdate",
            f"--LabApp.user_settings_dir={dirs['settings']}",
            f"--LabApp.workspaces_dir={dirs['workspaces']}",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _write_settings(settings_dir: str) -> None:
        # No "Would you like to receive official Jupyter news?" toast over the notebook.
        d = os.path.join(settings_dir, "@jupyterlab", "apputils-extension")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "notification.jupyterlab-settings"), "w") as f:
            json.dump({"checkForUpdates": False, "fetchNews": "false"}, f)

    def start(self, timeout: float = 60) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=self.root_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of pytest is handled by us, not sent to it
            )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            return bool(self.api("GET", "/api/status", timeout=2))

        try:
            # Connection refused (OSError) is "not yet"; the server exiting is raised at once.
            wait_until(ready, timeout, "jupyter lab to answer /api/status", not_yet=(OSError,))
        except Timeout as err:
            raise Timeout(f"{err}\n{self.log_tail()}") from None
        if self.proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else {}

    def lab_url(self, path: str) -> str:
        # ?reset: a fresh workspace, whatever a previous page left in it.
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    def processes(self) -> set[int]:
        if self.proc is None:
            return set()
        return ({self.proc.pid} | descendants(self.proc.pid)) if alive(self.proc.pid) else set()

    def stop(self) -> list[str]:
        """Shut every kernel down through the API, then the server; wait for all of its
        processes to end. Returns the processes that had to be killed (a leak to report)."""
        if self.proc is None:
            return []
        pids = self.processes()
        problems: list[str] = []
        if self.proc.poll() is None:
            try:
                for kernel in self.api("GET", "/api/kernels"):
                    self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=30)
                wait_until(
                    lambda: self.api("GET", "/api/kernels") == [],
                    timeout=20,
                    what="the kernels to shut down",
                )
            except (OSError, urllib.error.URLError, Timeout) as err:
                problems.append(f"kernel shutdown through the API failed: {err}")
            pids |= self.processes()
            with contextlib.suppress(OSError, urllib.error.URLError):
                self.api("POST", "/api/shutdown")
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                problems.append("jupyter lab did not exit after POST /api/shutdown")
        with contextlib.suppress(Timeout):
            wait_until(
                lambda: not any(alive(p) for p in pids),
                timeout=10,
                what="the server's processes to exit",
            )
        problems += [f"killed: {d}" for d in end_processes(pids)]
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        return problems


def install_course_kernel(prefix: Path | str) -> str:
    """The course's "pycont" kernelspec (``python -m pycont.vm.labkernel install``) under a
    scratch ``prefix``; returns the folder to put on the server's JUPYTER_PATH."""
    install = subprocess.run(
        [sys.executable, "-m", "pycont.vm.labkernel", "install", "--prefix", str(prefix)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, f"labkernel install failed: {install.stderr}"
    return str(Path(prefix) / "share" / "jupyter")
