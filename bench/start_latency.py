#!/usr/bin/env python3
"""Start-to-exit latency of ``/bin/true`` in a busybox root with all namespaces: pycont vs peers.

Contestants (each starts /bin/true in new namespaces and waits for it to exit):

  pycont-api   ``pycont.run("busybox", ["/bin/true"], rm=True, network="none")`` from a warm
               Python process (``none``: a network namespace with only ``lo``, as the
               bundle crun and runc run; docker's default bridge adds a veth, measured apart)
  pycont-nosec the same API call with ``security_opt=["seccomp=unconfined"]`` and
               ``cap_add=["ALL"]``: no seccomp filter, no capability cut (the cost of Docker's
               security defaults is pycont-api / pycont-nosec)
  pycont-cli   ``pycont run --rm --network none busybox /bin/true`` as a subprocess
  crun         ``crun run --bundle B ID`` (OCI bundle: busybox rootfs, ``crun spec`` config)
  runc         ``runc run --bundle B ID`` (same bundle)
  unshare      ``unshare --pid --fork --mount --uts --ipc --net --user --map-root-user /bin/true``

Measurement is paired and interleaved: every round runs each contestant once, in an order
that rotates from round to round, so drift and noise hit all contestants alike. Wall time is
``time.perf_counter()`` around the whole call: spawn to reap for the subprocesses, the
``pycont.run`` call for the API.

crun 1.8 refuses a hybrid cgroup layout whose cgroup2 part (``/sys/fs/cgroup/unified``) holds
controllers. On such a machine the timing worker (this file with ``--worker``) is re-executed
inside a private mount namespace where that mount is detached, so crun sees plain v1 and the
wrapper itself is never timed. Every contestant then runs in that same view. On a pure v2 (or
plain v1) machine the worker runs in the host's mount namespace.

Run as root:  python3 bench/start_latency.py [--runs 30] [--warmup 3]
Prints versions, a table (ms), ratios of medians and paired ratios; writes every sample to
``bench/results/start_latency-<date>.json``. Standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS_DIR = os.path.join(HERE, "results")
TAG = "pycont-bench"  # in every temp path and container id, so leftovers can be found
PACKAGES = ("busybox-static", "crun", "runc", "util-linux", "time")
UNIFIED = "/sys/fs/cgroup/unified"
RUN_TIMEOUT = 60.0
ORDER = ("pycont-api", "pycont-nosec", "pycont-cli", "crun", "runc", "unshare")
NOSEC = {"security_opt": ["seccomp=unconfined"], "cap_add": ["ALL"]}
UNSHARE_CMD = [
    "unshare",
    "--pid",
    "--fork",
    "--mount",
    "--uts",
    "--ipc",
    "--net",
    "--user",
    "--map-root-user",
    "/bin/true",
]
# (numerator, denominator): the ratios of medians the report prints
RATIOS = (
    ("pycont-api", "crun"),
    ("pycont-api", "pycont-nosec"),
    ("pycont-cli", "runc"),
    ("pycont-api", "unshare"),
    ("pycont-cli", "crun"),
)
TARGETS = {
    ("pycont-api", "crun"): "warm API at or below crun",
    ("pycont-cli", "runc"): "CLI at or below runc",
}


def log(msg: str) -> None:
    sys.stdout.flush()
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- machine facts ---------------------------------------------------------------------------
def fs_type(path: str) -> str:
    try:
        return subprocess.run(
            ["stat", "-f", "-c", "%T", path], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def cgroup_layout() -> str:
    """v2 | v1 | hybrid | hybrid-with-controllers (crun 1.8 refuses the last one)."""
    if fs_type("/sys/fs/cgroup") == "cgroup2fs":
        return "v2"
    if fs_type(UNIFIED) == "cgroup2fs":
        # cgroupfs files report size 0: read the content
        return "hybrid-with-controllers" if read_text(f"{UNIFIED}/cgroup.controllers") else "hybrid"
    return "v1"


def legacy_ns_prefix() -> list[str]:
    """Run a command in a private mount namespace without the cgroup2 'unified' mount.

    Host mounts are untouched; the namespace dies with the command."""
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'umount {UNIFIED} && exec "$@"',
        "legacy-ns",
    ]


def pkg_version(pkg: str) -> str:
    r = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True
    )
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else "not installed"


def install_missing() -> None:
    missing = [p for p in PACKAGES if pkg_version(p) == "not installed"]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing packages {missing}; install them as root")
    log(f"apt-get install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", *missing], env=env, check=True, stdout=subprocess.DEVNULL
    )


def git_facts() -> dict[str, str]:
    def git(*args: str) -> str:
        r = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty_files_in_pycont": str(
            len(git("status", "--porcelain", "--", "pycont").splitlines())
        ),
    }


def machine_facts() -> dict[str, object]:
    model = ""
    for line in read_text("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    layout = cgroup_layout()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "os": read_text("/etc/debian_version") and f"Debian {read_text('/etc/debian_version')}",
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": f"{platform.python_version()} ({sys.executable})",
        "cgroup_layout": layout,
        "unified_controllers": read_text(f"{UNIFIED}/cgroup.controllers")
        if layout.startswith("hybrid")
        else "",
        "packages": {p: pkg_version(p) for p in PACKAGES if p != "time"},
        "pycont": git_facts(),
    }


# -- the OCI bundle --------------------------------------------------------------------------
def build_rootfs(root: str) -> None:
    """busybox-static and one symlink per applet, like the peers' lib.sh build_rootfs."""
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "root"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
    subprocess.run(["chroot", root, "/bin/busybox", "--install", "-s", "/bin"], check=True)
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\n")


def write_config(bundle: str, base: dict, extra_ns: tuple[str, ...]) -> list[str]:
    """config.json = crun's default spec, /bin/true, no terminal, plus namespaces ``extra_ns``."""
    c = json.loads(json.dumps(base))
    c["process"]["terminal"] = False
    c["process"]["args"] = ["/bin/true"]
    c["hostname"] = TAG
    nss = c["linux"]["namespaces"]
    for ns in extra_ns:
        if not any(n["type"] == ns for n in nss):
            nss.append({"type": ns})
    if "user" in extra_ns:
        # the identity map, as pycont uses as root: same ids, capabilities only inside
        ident = [{"containerID": 0, "hostID": 0, "size": 4294967295}]
        c["linux"]["uidMappings"] = ident
        c["linux"]["gidMappings"] = json.loads(json.dumps(ident))
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(c, f, indent=1)
    return [n["type"] for n in nss]


def try_run(argv: list[str]) -> tuple[bool, str]:
    try:
        r = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return False, "timed out"
    return r.returncode == 0, (r.stderr or r.stdout).strip()[-400:]


def delete_state(ids: list[str]) -> None:
    for rt in ("crun", "runc"):
        if shutil.which(rt):
            for cid in ids:
                subprocess.run(
                    [rt, "delete", "-f", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )


def prepare_bundle(work: str, crun_prefix: list[str], ids: dict[str, str]) -> dict[str, object]:
    """Build the bundle; add cgroup+user namespaces if both runtimes accept them, else fall back."""
    bundle = os.path.join(work, "bundle")
    os.makedirs(bundle)
    build_rootfs(os.path.join(bundle, "rootfs"))
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        base = json.load(f)
    default_ns = [n["type"] for n in base["linux"]["namespaces"]]
    notes = []
    for extra in (("cgroup", "user"), ("cgroup",), ()):
        nss = write_config(bundle, base, extra)
        ok_runc, err_runc = try_run(["runc", "run", "--bundle", bundle, ids["runc"]])
        ok_crun, err_crun = try_run([*crun_prefix, "crun", "run", "--bundle", bundle, ids["crun"]])
        delete_state(list(ids.values()))
        if ok_runc and ok_crun:
            break
        notes.append(
            f"spec with added namespaces {list(extra)} rejected: "
            f"runc: {'ok' if ok_runc else err_runc!r}; crun: {'ok' if ok_crun else err_crun!r}"
        )
    else:
        raise SystemExit("crun/runc cannot run even the default spec:\n" + "\n".join(notes))
    return {
        "path": bundle,
        "namespaces": nss,
        "crun_spec_default_namespaces": default_ns,
        "added_namespaces": list(extra),
        "user_mapping": "uid/gid 0->0 size 4294967295 (identity)" if "user" in extra else "none",
        "fallback_notes": notes,
    }


def bytecode_note(env: dict[str, str]) -> str:
    if env.get("PYTHONPYCACHEPREFIX"):
        return "private cache under the temp folder (PYTHONPYCACHEPREFIX), filled by the warm-up"
    if env.get("PYTHONDONTWRITEBYTECODE"):
        return "PYTHONDONTWRITEBYTECODE set: stale or missing .pyc files are recompiled every run"
    return "the interpreter's default (__pycache__ next to the sources)"


# -- the timing worker -------------------------------------------------------------------------
def status_kib(field: str, pid: int | str = "self") -> int:
    """VmRSS, VmHWM... of a process from /proc/PID/status, in KiB (0 if unknown)."""
    for line in read_text(f"/proc/{pid}/status").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_kib() -> int:
    return status_kib("VmRSS")


def helper_processes() -> list[int]:
    """Our live child processes that are not contestants: e.g. pycont's fork server, which
    the warm API keeps so that it does not start an interpreter per container."""
    me = str(os.getpid())
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_text(f"/proc/{entry}/stat")
            if stat and stat.rsplit(")", 1)[1].split()[1] == me:
                kids.append(int(entry))
    return kids


def spawn_wait(argv: list[str], cwd: str | None = None) -> tuple[float, int]:
    """Wall seconds from spawn to reap, and the exit code. stdio on /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    actions = [
        (os.POSIX_SPAWN_DUP2, null, 0),
        (os.POSIX_SPAWN_DUP2, null, 1),
        (os.POSIX_SPAWN_DUP2, null, 2),
    ]
    try:
        old = os.getcwd()
        if cwd:
            os.chdir(cwd)
        try:
            t0 = time.perf_counter()
            pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
        finally:
            if cwd:
                os.chdir(old)
        pfd = os.pidfd_open(pid)
        try:
            ready, _, _ = select.select([pfd], [], [], RUN_TIMEOUT)
            if not ready:
                os.kill(pid, signal.SIGKILL)
        finally:
            os.close(pfd)
        _, status = os.waitpid(pid, 0)
        t1 = time.perf_counter()
    finally:
        os.close(null)
    return t1 - t0, os.waitstatus_to_exitcode(status)


def peak_rss_kib(argv: list[str], work: str, cwd: str | None = None) -> int | None:
    """GNU time's maximum resident set size (the largest process in the tree it waited for)."""
    out = os.path.join(work, "peak.txt")
    subprocess.run(
        ["/usr/bin/time", "-o", out, "-f", "%M", *argv],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = read_text(out).splitlines()[-1:] or [""]
    return int(last[0]) if last[0].isdigit() else None


def round_orders(names: list[str]) -> list[list[str]]:
    """A Williams design: the orders rotate (row i is row 0 shifted by i) and, over one full
    cycle (2n rounds for odd n, n for even), every contestant comes first, last, and right
    after every other contestant equally often, so no one always inherits the same
    predecessor's after-effects (net namespace teardown, cold caches)."""
    n = len(names)
    first, lo, hi = [0], 1, n - 1
    while len(first) < n:
        first.append(lo)
        lo += 1
        if len(first) < n:
            first.append(hi)
            hi -= 1
    rows = [[(x + i) % n for x in first] for i in range(n)]
    if n % 2:
        rows += [list(reversed(r)) for r in rows]
    return [[names[x] for x in r] for r in rows]


def worker(plan_path: str) -> int:
    with open(plan_path) as f:
        plan = json.load(f)
    os.environ["PYCONT_ROOT"] = plan["pycont_root"]
    view = {
        "unified_mount": "cgroup2" if fs_type(UNIFIED) == "cgroup2fs" else "not mounted",
        "mount_namespace": os.readlink("/proc/self/ns/mnt"),
    }
    cmds: dict[str, tuple[list[str], str | None]] = {
        "pycont-cli": (plan["pycont_cli"], REPO),
        "crun": (["crun", "run", "--bundle", plan["bundle"], plan["ids"]["crun"]], None),
        "runc": (["runc", "run", "--bundle", plan["bundle"], plan["ids"]["runc"]], None),
        "unshare": (UNSHARE_CMD, None),
    }

    rss0 = rss_kib()
    sys.path.insert(0, REPO)
    import pycont  # noqa: E402 - imported here so its cost shows in the RSS figures

    rss_import = rss_kib()

    def api_once(**options: object) -> tuple[float, int]:
        t0 = time.perf_counter()
        c = pycont.run(
            "busybox", ["/bin/true"], rm=True, network="none", timeout=RUN_TIMEOUT, **options
        )
        t1 = time.perf_counter()
        try:
            code = c.exit_code
        except pycont.ContainerNotFound:
            # rm=True: the record is gone once run() returns; the helper's exit code is the
            # container's (see pycont/runtime/shim.py).
            code = c.shim.returncode if c.shim is not None else -1
        return t1 - t0, code if code is not None else -1

    def once(name: str) -> tuple[float, int]:
        if name == "pycont-api":
            return api_once()
        if name == "pycont-nosec":
            return api_once(**NOSEC)
        argv, cwd = cmds[name]
        return spawn_wait(argv, cwd)

    # sanity: one run each (the first pycont run also builds its busybox image)
    first = {}
    for name in ORDER:
        t, rc = once(name)
        first[name] = {"wall_ms": t * 1e3, "rc": rc}
        log(f"sanity {name}: rc={rc} ({t * 1e3:.1f} ms)")
    rss_first = rss_kib()
    bad = [n for n, r in first.items() if r["rc"] != 0]
    if bad:
        log(f"contestants failing their first run: {bad}; they are still timed, their rc recorded")

    orders = round_orders(list(ORDER))
    rounds = []
    total = plan["warmup"] + plan["runs"]
    for r in range(total):
        # warm-up rounds use the design too; timed round 0 starts a fresh cycle
        order = orders[(r - plan["warmup"]) % len(orders)]
        row = {
            "round": r - plan["warmup"],
            "warmup": r < plan["warmup"],
            "order": order,
            "ms": {},
            "rc": {},
        }
        for name in order:
            t, rc = once(name)
            row["ms"][name] = round(t * 1e3, 4)
            row["rc"][name] = rc
        rounds.append(row)
        if (r + 1) % 10 == 0 or r + 1 == total:
            log(f"round {r + 1}/{total}")
    rss_after = rss_kib()

    peaks = {}
    for name in ("pycont-cli", "crun", "runc", "unshare"):
        argv, cwd = cmds[name]
        peaks[name] = peak_rss_kib(argv, plan["work"], cwd)
    hwm = status_kib("VmHWM")
    helpers = []
    for pid in helper_processes():
        cmd = read_text(f"/proc/{pid}/cmdline").replace("\0", " ").strip()
        words = cmd.split()
        short = next(
            (" ".join(words[i : i + 2]) for i, w in enumerate(words) if w.endswith(".py")), cmd[:40]
        )
        helpers.append(
            {
                "pid": pid,
                "cmd": cmd.replace(REPO + "/", ""),
                "short": short,
                "rss_kib": status_kib("VmRSS", pid),
                "hwm_kib": status_kib("VmHWM", pid),
            }
        )
    out = {
        "view": view,
        "pycont_module": pycont.__file__,
        "first_runs": first,
        "rounds": rounds,
        "peak_rss_kib": peaks,
        "api_rss_kib": {
            "before_import": rss0,
            "after_import": rss_import,
            "after_first_run": rss_first,
            "after_all_runs": rss_after,
            "hwm": hwm,
            "helpers": helpers,
        },
    }
    with open(plan["out"], "w") as f:
        json.dump(out, f)
    return 0


# -- report ----------------------------------------------------------------------------------
def summary(vals: list[float]) -> dict[str, float]:
    s = sorted(vals)
    p90 = statistics.quantiles(s, n=10, method="inclusive")[8] if len(s) > 1 else s[0]
    p10 = statistics.quantiles(s, n=10, method="inclusive")[0] if len(s) > 1 else s[0]
    return {
        "n": len(s),
        "min": s[0],
        "p10": p10,
        "median": statistics.median(s),
        "p90": p90,
        "max": s[-1],
        "mean": statistics.fmean(s),
    }


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def header_lines(meta: dict, bundle: dict, plan: dict, res: dict) -> list[str]:
    pc = meta["pycont"]
    out = [
        "# pycont start latency: /bin/true in a busybox root, all namespaces",
        f"date {meta['date']}; {meta['os']}; kernel {meta['kernel']}; "
        f"{meta['cpus']} cpus ({meta['cpu_model']})",
        f"python {meta['python']}",
        f"pycont {pc['commit']} ({pc['dirty_files_in_pycont']} uncommitted files under pycont/); "
        f"cli: {' '.join(plan['pycont_cli_shown'])}",
        "packages: " + ", ".join(f"{k} {v}" for k, v in meta["packages"].items()),
    ]
    layout = meta["cgroup_layout"]
    if meta["unified_controllers"]:
        layout += f" (unified holds: {meta['unified_controllers']})"
    out.append(f"cgroup layout: {layout}")
    if plan["legacy_ns"]:
        out.append(
            f"timing worker ran in a private mount namespace without {UNIFIED} (crun 1.8 refuses "
            f"this layout; {UNIFIED} there: {res['view']['unified_mount']}); all contestants ran "
            "in that view"
        )
    else:
        out.append("timing worker ran in the host mount namespace (crun needs no wrapper here)")
    added = ", ".join(bundle["added_namespaces"]) or "none"
    out += [
        f"OCI bundle namespaces: {', '.join(bundle['namespaces'])} "
        f"(added to crun spec's: {added}); "
        f"user mapping: {bundle['user_mapping']}",
        *(f"NOTE: {note}" for note in bundle["fallback_notes"]),
        f"unshare: {' '.join(UNSHARE_CMD)}",
        f"python bytecode: {plan['bytecode']}",
        f"rounds: {plan['runs']} timed after {plan['warmup']} warm-up; each contestant once per "
        f"round; orders rotate (Williams design, a cycle of {len(round_orders(list(ORDER)))} "
        "rounds balances who runs after whom)",
    ]
    return out


def report(meta: dict, bundle: dict, plan: dict, res: dict) -> dict:
    timed = [r for r in res["rounds"] if not r["warmup"]]
    samples = {n: [r["ms"][n] for r in timed] for n in ORDER}
    failures = {n: sum(1 for r in timed if r["rc"][n] != 0) for n in ORDER}
    stats = {n: summary(v) for n, v in samples.items()}
    ratios = {}
    for a, b in RATIOS:
        paired = summary([r["ms"][a] / r["ms"][b] for r in timed])
        ratios[f"{a}/{b}"] = {
            "of_medians": stats[a]["median"] / stats[b]["median"],
            "paired_median": paired["median"],
            "paired_p10": paired["p10"],
            "paired_p90": paired["p90"],
        }
    peaks, api = res["peak_rss_kib"], res["api_rss_kib"]

    print()
    print("\n".join(header_lines(meta, bundle, plan, res)))
    print()
    print("| contestant  |  min ms | median ms |  p90 ms |  max ms | fails | peak RSS          |")
    print("|-------------|--------:|----------:|--------:|--------:|------:|-------------------|")
    for n in ORDER:
        s = stats[n]
        if n == "pycont-nosec":
            rss = "as pycont-api"
        elif n == "pycont-api":
            rss = f"+{mib(api['after_first_run'] - api['after_import'])} (caller)"
        else:
            rss = mib(peaks[n]) if peaks.get(n) else "n/a"
        print(
            f"| {n:<11} | {s['min']:7.2f} | {s['median']:9.2f} | {s['p90']:7.2f} "
            f"| {s['max']:7.2f} | {failures[n]:5d} | {rss:<17} |"
        )
    print()
    print("ratio (< 1: pycont faster)   of medians   paired: median [p10..p90]")
    for key, r in ratios.items():
        target = TARGETS.get(tuple(key.split("/")))
        verdict = f"   target ({target}): {'MET' if r['of_medians'] <= 1 else 'not met'}"
        print(
            f"  {key:<26} {r['of_medians']:8.2f}x   {r['paired_median']:6.2f}x "
            f"[{r['paired_p10']:.2f}..{r['paired_p90']:.2f}]{verdict if target else ''}"
        )
    print()
    print("peak RSS: GNU time %M (the largest process of the tree) for the subprocesses.")
    print(
        f"pycont-api: the caller's RSS {mib(api['before_import'])} before import pycont, "
        f"+{mib(api['after_import'] - api['before_import'])} after it, "
        f"+{mib(api['after_first_run'] - api['after_import'])} after the first run, "
        f"+{mib(api['after_all_runs'] - api['after_first_run'])} after all the others"
    )
    for h in api["helpers"]:
        print(
            f"  plus a helper process it keeps ({os.path.basename(h['short'])}): "
            f"RSS {mib(h['rss_kib'])}, peak {mib(h['hwm_kib'])}"
        )
    if any(failures.values()):
        print(f"FAILURES (non-zero exit) in timed rounds: {failures}")
    return {"stats_ms": stats, "ratios": ratios, "failures": failures, "samples_ms": samples}


# -- cleanup and leak check ------------------------------------------------------------------
def our_mounts(work: str = "") -> list[str]:
    """Mount lines that name pycont, overlay or (when given) the temp folder."""
    out = []
    for line in read_text("/proc/self/mountinfo").splitlines():
        if (work and work in line) or "pycont" in line or " overlay " in line:
            out.append(line)
    return out


def leftover_processes(work: str) -> list[str]:
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # our temp folder is in the shims' and bundles' paths; our ids in crun/runc's
        if work in cmd or TAG + "-" in cmd:
            found.append(f"{entry} {cmd.strip()}")
    return found


def cleanup(work: str, ids: list[str]) -> None:
    delete_state(ids)
    for line in reversed(our_mounts(work)):
        target = line.split()[4]
        if target.startswith(work):
            subprocess.run(["umount", "-l", target], stderr=subprocess.DEVNULL)
    shutil.rmtree(work, ignore_errors=True)


def in_project_venv() -> None:
    """Re-exec under the project's venv (scripts/bootstrap.sh makes it) when started by another
    interpreter: the timed pycont imports its dependencies (pyseccomp) from there."""
    venv_python = os.path.join(REPO, ".venv", "bin", "python")
    if os.path.exists(venv_python) and sys.prefix != os.path.join(REPO, ".venv"):
        os.execv(venv_python, [venv_python, os.path.abspath(__file__), *sys.argv[1:]])


def main() -> int:
    in_project_venv()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="timed rounds (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    ap.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep the inherited PYTHONDONTWRITEBYTECODE/PYTHONPYCACHEPREFIX instead of "
        "a private bytecode cache in the temp folder",
    )
    ap.add_argument("--worker", metavar="PLAN", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker)
    if os.geteuid() != 0:
        sys.exit("run as root: crun, runc and pycont need it here")
    if a.runs < 2 or a.warmup < 0:
        sys.exit("--runs must be at least 2, --warmup at least 0")

    install_missing()
    mounts_before = set(our_mounts())
    work = tempfile.mkdtemp(prefix=f"{TAG}.")
    os.chmod(work, 0o755)
    ids = {"crun": f"{TAG}-crun-{os.getpid()}", "runc": f"{TAG}-runc-{os.getpid()}"}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        meta = machine_facts()
        legacy = meta["cgroup_layout"] == "hybrid-with-controllers"
        prefix = legacy_ns_prefix() if legacy else []
        where = "in a legacy-view mount namespace" if legacy else "in the host's mount namespace"
        log(f"cgroup layout {meta['cgroup_layout']}; the timing worker runs {where}")
        log("building the OCI bundle")
        bundle = prepare_bundle(work, prefix, ids)
        venv_cli = os.path.join(REPO, ".venv", "bin", "pycont")
        cli = [venv_cli] if os.access(venv_cli, os.X_OK) else [sys.executable, "-m", "pycont"]
        plan = {
            "runs": a.runs,
            "warmup": a.warmup,
            "work": work,
            "bundle": bundle["path"],
            "ids": ids,
            "pycont_root": os.path.join(work, "pycont-root"),
            "out": os.path.join(work, "worker.json"),
            "pycont_cli": [*cli, "run", "--rm", "--network", "none", "busybox", "/bin/true"],
            "legacy_ns": legacy,
        }
        plan["pycont_cli_shown"] = [
            os.path.relpath(x, REPO) if x.startswith(REPO) else x for x in plan["pycont_cli"]
        ]
        log(f"timing: {a.warmup} warm-up + {a.runs} rounds x {len(ORDER)} contestants")
        # Python's bytecode cache: an installed pycont has its .pyc files; without them every
        # CLI run recompiles what changed (PYTHONDONTWRITEBYTECODE may be set, and pycont/ is
        # others' to write). Keep a private cache in the temp folder, filled by the warm-up.
        env = dict(os.environ)
        if not a.no_bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = os.path.join(work, "pycache")
        plan["bytecode"] = bytecode_note(env)
        with open(os.path.join(work, "plan.json"), "w") as f:
            json.dump(plan, f)
        r = subprocess.run(
            [
                *prefix,
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                os.path.join(work, "plan.json"),
            ],
            env=env,
        )
        if r.returncode != 0:
            sys.exit(f"timing worker failed (exit {r.returncode})")
        with open(plan["out"]) as f:
            res = json.load(f)
        summary_ = report(meta, bundle, plan, res)
        os.makedirs(RESULTS_DIR, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S")
        path = os.path.join(RESULTS_DIR, f"start_latency-{stamp}.json")
        doc = {
            "meta": meta,
            "bundle": {k: v for k, v in bundle.items() if k != "path"},
            "method": {
                "runs": a.runs,
                "warmup": a.warmup,
                "order": list(ORDER),
                "rotation": "Williams design: round i runs orders[i % len(orders)], "
                "rotations of one row plus their reverses (each contestant "
                "follows every other equally often over a cycle)",
                "clock": "time.perf_counter around spawn..reap (posix_spawn + waitpid) "
                "or around pycont.run()",
                "legacy_mount_ns": legacy,
                "bytecode": plan["bytecode"],
                "commands": {
                    "pycont-api": 'pycont.run("busybox", ["/bin/true"], rm=True, network="none")',
                    "pycont-nosec": "the same, with " + json.dumps(NOSEC),
                    "pycont-cli": plan["pycont_cli_shown"],
                    "crun": ["crun", "run", "--bundle", "$BUNDLE", ids["crun"]],
                    "runc": ["runc", "run", "--bundle", "$BUNDLE", ids["runc"]],
                    "unshare": UNSHARE_CMD,
                },
            },
            "worker": {k: v for k, v in res.items() if k != "rounds"},
            "rounds": res["rounds"],
            **summary_,
        }
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"\nall samples: {os.path.relpath(path, os.getcwd())}", flush=True)
    finally:
        cleanup(work, list(ids.values()))
        new = sorted(set(our_mounts()) - mounts_before)
        procs = leftover_processes(work)
        if new or procs or os.path.exists(work):
            print(f"LEAK CHECK FAILED: mounts {new} processes {procs}", file=sys.stderr)
            leaked = True
        else:
            log("leak check: no new pycont/overlay mount, no process of ours left, temp dir gone")
            leaked = False
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
