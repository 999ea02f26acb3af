"""python -m pycont.compare [--record]: run the container-vs-VM comparison and print it.

``--record`` also writes the figures to pycont/data/vm_recorded.json (or ``--out``), with this
command line, the machine and the date, for :func:`pycont.compare.recorded`.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from pycont.errors import PycontError


def main(argv: list[str] | None = None) -> int:
    from pycont import compare

    ap = argparse.ArgumentParser(prog="python -m pycont.compare", description=__doc__)
    ap.add_argument("--image", default="busybox")
    ap.add_argument("--budget", default="1g", help="density budget (default 1g)")
    ap.add_argument("--max-containers", type=int, default=50)
    ap.add_argument("--max-vms", type=int, default=6)
    ap.add_argument("--time-limit", type=float, default=60.0, help="density, s per kind")
    ap.add_argument("--prefix", default="cmp", help="names of what it starts begin with this")
    ap.add_argument("--record", action="store_true", help="write the figures as the recorded ones")
    ap.add_argument("--out", help="with --record: where to write (default: the package's)")
    a = ap.parse_args(argv)
    ok, why = compare.available()
    if not ok:
        print(f"no VM here: {why}", file=sys.stderr)
        return 1
    try:
        result = compare.run_all(
            a.image,
            budget=a.budget,
            max_containers=a.max_containers,
            max_vms=a.max_vms,
            time_limit=a.time_limit,
            prefix=a.prefix,
        )
    except PycontError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(result)
    print(f"\n({result.seconds:.1f} s)")
    if a.record:
        args = argv if argv is not None else sys.argv[1:]
        command = f"python -m pycont.compare {shlex.join(args)}".strip()
        path = compare.record(result, command, a.out)
        print(f"recorded: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
