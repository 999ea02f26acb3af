"""The course's Jupyter kernel: here when this machine allows containers, in the lab VM if not.

    python -m pycont.vm.labkernel install [--sys-prefix | --user | --prefix P]
    python -m pycont.vm.labkernel why            # which backend, and why
    python -m pycont.vm.labkernel -f CONNECTION  # what the kernelspec runs

The kernelspec is ``pycont`` ("Python 3 (pycont)"); the notebooks name it. Jupyter starts this
module with a connection file. With the local backend it becomes an ordinary ipykernel (an
execv: no process in between). With the vm backend it boots the lab VM
(:mod:`pycont.vm.lab`) and waits for it; the VM powers off when the kernel shuts down, and dies
with this process if Jupyter kills it. If the VM cannot start the kernel, the kernel runs here,
and the reason travels in ``PYCONT_LAB_FAILED`` so that the chapter says so.

Interrupts are messages (``interrupt_mode: message``): Jupyter sends them over the control
channel, which reaches a kernel in the VM as well as one here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence

from pycont.kernel.probe import ENV_LAB_FAILED as ENV_FAILED

KERNEL_NAME = "pycont"
# the kernel without a Python version in language_info (see pycont.vm.coursekernel)
KERNEL_CLASS = "--IPKernelApp.kernel_class=pycont.vm.coursekernel.CourseKernel"
DISPLAY_NAME = "Python 3 (pycont)"


def kernel_json(python: str) -> dict[str, object]:
    return {
        "argv": [python, "-m", "pycont.vm.labkernel", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {"debugger": True},
    }


def install(user: bool = False, prefix: str | None = None, python: str | None = None) -> str:
    """Install the kernelspec (with ipykernel's logos); returns the folder it went to."""
    from ipykernel.kernelspec import RESOURCES
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory(prefix="pycont-kernelspec-") as tmp:
        for name in os.listdir(RESOURCES):
            if name.startswith("logo"):
                shutil.copyfile(os.path.join(RESOURCES, name), os.path.join(tmp, name))
        with open(os.path.join(tmp, "kernel.json"), "w") as f:
            json.dump(kernel_json(python or sys.executable), f, indent=1)
        return KernelSpecManager().install_kernel_spec(tmp, KERNEL_NAME, user=user, prefix=prefix)


def _log(text: str) -> None:
    # The launcher's stderr is the Jupyter server's log: the lab VM's console goes there.
    sys.stderr.write(text)
    sys.stderr.flush()


def _exec_local(connection_file: str, extra_env: dict[str, str] | None = None) -> None:
    env = {**os.environ, **(extra_env or {})}
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file, KERNEL_CLASS]
    os.execve(sys.executable, argv, env)


def launch(connection_file: str) -> int:
    from pycont.vm.errors import VMError
    from pycont.vm.lab import choose_backend, run_kernel

    try:
        backend = choose_backend()
    except VMError as e:  # a bad PYCONT_BACKEND: say it, and do not start a kernel
        _log(f"pycont kernel: {e}\n")
        return 2
    if backend.name == "local":
        _exec_local(connection_file)
    _log(f"pycont kernel: booting the lab VM ({backend.reason})\n")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts are messages to the guest
    try:
        code = run_kernel(connection_file, backend.reason, log=_log)
        failed = "the VM ended before the kernel started (see the server log)"
    except (VMError, OSError) as e:
        code, failed = None, str(e)
    if code is None:
        _log(f"pycont kernel: lab VM failed ({failed}); running the kernel here\n")
        _exec_local(connection_file, {ENV_FAILED: failed})
    return code or 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "-f" and len(args) == 2:
        return launch(args[1])
    parser = argparse.ArgumentParser(prog="python -m pycont.vm.labkernel")
    sub = parser.add_subparsers(dest="verb", required=True)
    inst = sub.add_parser("install", help=f"install the {KERNEL_NAME!r} kernelspec")
    where = inst.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="in the user's Jupyter folder")
    where.add_argument("--sys-prefix", action="store_true", help=f"in {sys.prefix}")
    where.add_argument("--prefix", help="under this prefix")
    sub.add_parser("why", help="print the backend this machine gets, and why")
    ns = parser.parse_args(args)
    if ns.verb == "install":
        prefix = sys.prefix if ns.sys_prefix else ns.prefix
        print(install(user=ns.user, prefix=prefix))
        return 0
    from pycont.vm.errors import VMError
    from pycont.vm.lab import choose_backend

    try:
        print(choose_backend())
    except VMError as e:
        print(f"pycont: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
