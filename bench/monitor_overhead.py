"""The sampler's own cost: N containers watched at F Hz, as a percentage of one CPU.

    sudo python3 bench/monitor_overhead.py [--containers 20] [--hz 10] [--seconds 10]

The sampler thread measures its own CPU time (time.thread_time), so other load on the machine
does not count against it. Target: 20 containers at 10 Hz under 1% of one CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--containers", type=int, default=20)
    ap.add_argument("--hz", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="pycont-bench-monitor-")
    os.environ["PYCONT_ROOT"] = root
    import pycont
    from pycont.monitor import Sampler

    made = []
    try:
        for i in range(a.containers):
            made.append(
                pycont.run(
                    "busybox", ["sleep", "1000"], detach=True, name=f"bench-mon-{i}", memory="64m"
                )
            )
        s = Sampler(1 / a.hz)
        for c in made:
            s.watch(c)
        s.start()
        time.sleep(a.seconds)
        s.stop()
        per_tick_us = 1e6 * s.cpu_seconds / max(s.ticks, 1)
        print(f"containers {a.containers}, {a.hz:g} Hz, {a.seconds:g} s: {s.ticks} ticks")
        print(
            f"sampler CPU: {s.overhead_percent():.3f}% of one CPU "
            f"({per_tick_us:.0f} us per tick, {per_tick_us / a.containers:.1f} us per container)"
        )
        print(f"target < 1%: {'met' if s.overhead_percent() < 1 else 'NOT met'}")
        return 0
    finally:
        for c in made:
            c.remove(force=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
