"""The guest agent: a line protocol on a virtio-serial port, spoken by busybox sh in the guest.

A container's processes are host processes: pycont reads their cgroup and enters their
namespaces. A VM's processes live under another kernel, so the host can only ask. qemu gives
the guest a virtio-serial port named ``org.pycont.agent`` (virtio_console: /dev/vportNpM in the
guest) whose host end is a unix socket in the VM's folder. The agent in the guest reads one
request per line and answers with lines that carry the request's id::

    PING id                 -> PONG id
    EXEC id BASE64-SCRIPT   -> PID id pid, OUT/ERR id BASE64-CHUNK (many), EXIT id code
    KILL id SIGNAL          -> (the exec's process gets the signal)
    STAT id                 -> STAT id BASE64(/proc/uptime, /proc/meminfo, /proc/stat)
    STOP id SIGNAL          -> STOPPING id (the VM's command gets the signal; init then powers off)

The agent is a shell script run by pycont's own static busybox (/.pycont/busybox), so it needs
nothing from the image: no interpreter, no compiler. Every exec runs in the background, so stats
and other execs are served while one runs. Its output travels in base64 chunks of at most 1 KiB,
one write(2) per line, so lines from concurrent writers never interleave. The host connects
per request (qemu's socket serves one client at a time) and ignores lines of other ids. Through
EXEC, the agent carries any command line, pycont's own CLI included where the guest has it.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import shlex
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pycont.vm.errors import VMError

PORT_NAME = "org.pycont.agent"
SOCKET = "agent.sock"

AGENT = r"""# pycont's guest agent (see pycont/vm/agent.py for the protocol)
B=/.pycont/busybox
A=/run/.pycont-agent
$B mkdir -p $A
exec 3<>"$1"
pump() {  # pump KIND ID <fifo: the stream in base64 chunks, one line per read(2)
    while c=$($B dd bs=1024 count=1 2>/dev/null | $B base64 -w0) && [ -n "$c" ]; do
        echo "$1 $2 $c" >&3
    done
}
serve_exec() {
    d=$A/$1
    $B mkdir -p $d
    echo "$2" | $B base64 -d >$d/script
    $B mkfifo $d/out $d/err
    # a session of its own, so KILL reaches everything the script started (kill -SIG -pgid)
    $B setsid $B sh $d/script </dev/null >$d/out 2>$d/err &
    pid=$!
    echo $pid >$d/pid
    echo "PID $1 $pid" >&3
    pump OUT $1 <$d/out &
    p1=$!
    pump ERR $1 <$d/err &
    p2=$!
    wait $pid
    rc=$?
    wait $p1 $p2
    echo "EXIT $1 $rc" >&3
    $B rm -rf $d
}
while :; do
    while read -r op id arg <&3; do
        case $op in
        PING) echo "PONG $id" >&3 ;;
        EXEC) serve_exec "$id" "$arg" & ;;
        STAT) echo "STAT $id $($B cat /proc/uptime /proc/meminfo /proc/stat | $B base64 -w0)" >&3 ;;
        KILL) $B kill -"$arg" -- "-$($B cat $A/$id/pid 2>/dev/null)" 2>/dev/null ;;
        STOP) $B kill -"$arg" "$($B cat /run/.pycont-command.pid)" 2>/dev/null
              echo "STOPPING $id" >&3 ;;
        *) echo "ERROR $id unknown request: $op" >&3 ;;
        esac
    done
    # No host connected: read(2) on the port returns 0 at once (virtio_console.c), so wait a
    # little before the next try rather than spin.
    $B sleep 0.1
done
"""

USER_HZ = 100  # proc(5): /proc/stat counts in USER_HZ, 100 on every Linux architecture
CHUNK_TIMEOUT = 0.5


@dataclass(frozen=True)
class GuestStats:
    """What the guest's own kernel says about itself (its /proc), read through the agent."""

    uptime: float  # seconds since the guest kernel booted
    mem_total: int  # bytes, MemTotal: the RAM given with -m, minus what the kernel reserved
    mem_available: int  # bytes, MemAvailable
    mem_free: int
    cached: int
    cpu_busy: float  # seconds of non-idle CPU over all vCPUs since boot
    cpu_total: float  # seconds of all CPU time over all vCPUs since boot
    ncpu: int

    @property
    def mem_used(self) -> int:
        return self.mem_total - self.mem_available


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def parse_stats(text: str) -> GuestStats:
    """GuestStats from the concatenation of /proc/uptime, /proc/meminfo and /proc/stat."""
    lines = text.splitlines()
    try:
        uptime = float(lines[0].split()[0])
        mem: dict[str, int] = {}
        busy = total = 0.0
        ncpu = 0
        for line in lines[1:]:
            key, _, rest = line.partition(":")
            if rest and rest.strip().endswith("kB"):
                mem[key] = int(rest.split()[0]) * 1024
            elif line.startswith("cpu "):
                # proc(5): user nice system idle iowait irq softirq steal ...
                ticks = [int(x) for x in line.split()[1:9]]
                total = sum(ticks) / USER_HZ
                busy = total - (ticks[3] + ticks[4]) / USER_HZ
            elif line.startswith("cpu"):
                ncpu += 1
        return GuestStats(
            uptime=uptime,
            mem_total=mem["MemTotal"],
            mem_available=mem.get("MemAvailable", mem["MemFree"]),
            mem_free=mem["MemFree"],
            cached=mem.get("Cached", 0),
            cpu_busy=busy,
            cpu_total=total,
            ncpu=ncpu or 1,
        )
    except (IndexError, KeyError, ValueError) as err:
        raise VMError(f"guest agent: cannot read the guest's /proc: {err!r}") from None


def exec_script(
    command: str | Sequence[str], env: Mapping[str, str] | None = None, workdir: str | None = None
) -> str:
    """The script the agent runs: a string is a shell line (sh -c), a list an argv to exec."""
    lines = [f"export {k}={shlex.quote(v)}" for k, v in (env or {}).items()]
    if workdir:
        lines.append(f"cd {shlex.quote(workdir)} || exit 125")
    lines.append(command if isinstance(command, str) else "exec " + shlex.join(command))
    return "\n".join(lines) + "\n"


class Agent:
    """The host's end: one connection per request to the socket in the VM's folder."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def _connect(self, timeout: float) -> socket.socket:
        # sun_path holds 108 bytes and a store's path can be longer: go through an O_PATH fd
        # of the folder (the kernel resolves /proc/self/fd/N as it does the folder).
        dfd = os.open(self.folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(timeout)
            sock.connect(f"/proc/self/fd/{dfd}/{SOCKET}")
        except OSError as err:
            sock.close()
            raise VMError(f"guest agent: cannot connect to {self.folder}/{SOCKET}: {err}") from err
        finally:
            os.close(dfd)
        return sock

    def _lines(self, sock: socket.socket, rid: str, deadline: float) -> Callable[[], list[str]]:
        buf = b""

        def more() -> list[str]:
            nonlocal buf
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(min(left, CHUNK_TIMEOUT))
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    raise VMError("guest agent: the connection closed (the guest stopped?)")
                buf += data
            *done, buf = buf.split(b"\n")
            parts = [line.decode(errors="replace").split(" ", 2) for line in done]
            return [" ".join(p) for p in parts if len(p) >= 2 and p[1] == rid]

        return more

    def request(self, op: str, arg: str = "", *, expect: str, timeout: float = 10.0) -> str:
        """Send one request; return the argument of the first reply ``expect`` for it."""
        rid = secrets.token_hex(4)
        deadline = time.monotonic() + timeout
        with self._connect(timeout) as sock:
            sock.sendall(f"{op} {rid} {arg}".rstrip().encode() + b"\n")
            more = self._lines(sock, rid, deadline)
            try:
                while True:
                    for line in more():
                        kind, _, rest = line.partition(" ")
                        if kind == "ERROR":
                            raise VMError(f"guest agent: {rest.partition(' ')[2]}")
                        if kind == expect:
                            return rest.partition(" ")[2]
            except TimeoutError:
                raise VMError(f"guest agent: no answer to {op} within {timeout:g} s") from None

    def ping(self, timeout: float = 5.0) -> float:
        t0 = time.monotonic()
        self.request("PING", expect="PONG", timeout=timeout)
        return time.monotonic() - t0

    def stats(self, timeout: float = 5.0) -> GuestStats:
        raw = self.request("STAT", expect="STAT", timeout=timeout)
        try:
            return parse_stats(base64.b64decode(raw).decode(errors="replace"))
        except binascii.Error as err:
            raise VMError(f"guest agent: a garbled STAT reply: {err}") from None

    def stop(self, signal: int = 15, timeout: float = 5.0) -> None:
        self.request("STOP", str(signal), expect="STOPPING", timeout=timeout)

    def exec(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
        on_output: Callable[[str, str], None] | None = None,
    ) -> ExecResult:
        """Run ``command`` in the guest; ``on_output(stream, text)`` gets output as it comes."""
        script = base64.b64encode(exec_script(command, env, workdir).encode()).decode()
        rid = secrets.token_hex(4)
        t0 = time.monotonic()
        deadline = t0 + (timeout if timeout is not None else 10 * 365 * 86400.0)
        out: dict[str, list[str]] = {"OUT": [], "ERR": []}
        decoders = {k: _decoder() for k in out}
        with self._connect(10.0) as sock:
            sock.sendall(f"EXEC {rid} {script}\n".encode())
            more = self._lines(sock, rid, deadline)
            try:
                while True:
                    for line in more():
                        kind, _, rest = line.partition(" ")
                        arg = rest.partition(" ")[2]
                        if kind in out:
                            text = decoders[kind](base64.b64decode(arg), False)
                            out[kind].append(text)
                            if on_output and text:
                                on_output("stdout" if kind == "OUT" else "stderr", text)
                        elif kind == "EXIT":
                            return ExecResult(
                                int(arg),
                                "".join(out["OUT"]) + decoders["OUT"](b"", True),
                                "".join(out["ERR"]) + decoders["ERR"](b"", True),
                                time.monotonic() - t0,
                            )
            except (TimeoutError, KeyboardInterrupt) as err:
                # the process in the guest must not outlive the request
                sock.sendall(f"KILL {rid} 9\n".encode())
                if isinstance(err, KeyboardInterrupt):
                    raise
                raise VMError(f"exec: no exit within {timeout:g} s: killed in the guest") from None


def _decoder() -> Callable[[bytes, bool], str]:
    import codecs

    return codecs.getincrementaldecoder("utf-8")("replace").decode
