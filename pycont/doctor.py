"""`pycont doctor`: what this machine allows, as the CLI prints it.

The probe (:mod:`pycont.kernel.probe`) asks the kernel; this module only formats its answers,
so the CLI, the notebooks and the tests all read the same facts.
"""

from __future__ import annotations

from pycont.kernel.probe import Probe

__all__ = ["doctor_text"]


def doctor_text(p: Probe) -> str:
    """The report ``pycont doctor`` prints: a heading, the mode, then one line per answer."""
    controllers = ", ".join(f"{c} ({v})" for c, v in p.cgroup_controllers.items()) or "none"
    out = [
        "pycont doctor",
        "=============",
        f"mode: {p.mode_summary}",
        f"kernel {p.kernel}; cgroups {p.cgroup_mode}; controllers: {controllers}",
        "",
    ]
    for label, answer in p.answers():
        out.append(f"{'✔' if answer.ok else '✘'} {label}: {answer.reason}")
        if answer.detail:
            out.append(f"    {answer.detail}")
    from pycont.security import seccomp

    ok, why = seccomp.available()
    out.append(f"{'✔' if ok else '✘'} seccomp profile: {why}")
    from pycont.net import support

    for label, (ok, why) in (("networks", support.networks()), ("latency", support.latency())):
        out.append(f"{'✔' if ok else '✘'} {label}: {why}")
    from pycont.runtime import mon

    monitor = mon.binary()
    out.append(f"{'✔' if monitor else '✘'} detached containers' monitor: {mon.status()}")
    out.append(f"backend: {_backend_line(p)}")
    out += ["", f"probed in {p.elapsed * 1000:.0f} ms"]
    return "\n".join(out)


def _backend_line(p: Probe) -> str:
    """Where the course's kernel runs here (pycont.vm.lab decides), and how to get there."""
    from pycont.errors import PycontError
    from pycont.vm.lab import choose_backend

    try:
        b = choose_backend(probe_fn=lambda: p)
    except PycontError as err:
        return str(err)
    if b.name == "vm":
        return (
            f"pycont's lab VM ({b.reason}): the course's kernel, Python 3 (pycont), runs "
            "there; in a terminal, pycont lab COMMAND"
        )
    return f"this host ({b.reason})"
