"""Child processes and loopback ports shared by the local Kafka and Redis runners."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class InfraError(RuntimeError):
    """Local infrastructure could not be installed, started or reached."""


# Popen objects of the servers this process started, by pid: kept so a long-lived parent
# (pytest) can reap them (no zombie answering `kill -0`) and never drops a running Popen
# (which warns ResourceWarning).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(argv: Sequence[str], *, cwd: Path, output: Path) -> int:
    """Start a server in its own session (it outlives a CLI call; one killpg stops it all)."""
    with output.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


def pid_alive(pid: int, needle: str | None = None) -> bool:
    """True while `pid` runs (not a zombie) and, if given, its command line holds `needle`.

    The needle guards against a recycled pid read back from a stale state file.
    """
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
            return False
    else:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by someone else
    if not Path("/proc/self").exists():  # no procfs (macOS): `kill -0` is all we can tell
        return True
    proc = Path(f"/proc/{pid}")
    try:
        # Field 3 of /proc/<pid>/stat is the state; `Z` is a zombie no one reaped yet.
        state = proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, IndexError):
        return False
    return state != "Z" and (needle is None or needle in cmdline)


def terminate(pid: int, timeout_s: float = 30.0, needle: str | None = None) -> None:
    """SIGTERM the server's process group, wait, then SIGKILL what is left."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        if not pid_alive(pid, needle):
            break
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        except PermissionError:
            os.kill(pid, sig)  # not a group leader we own: signal the process alone
        deadline = time.monotonic() + wait_s
        while pid_alive(pid, needle) and time.monotonic() < deadline:
            time.sleep(0.05)
    child = _CHILDREN.pop(pid, None)
    if child is not None and child.poll() is None:
        child.wait(5.0)
    if pid_alive(pid, needle):
        raise InfraError(f"process {pid} survived SIGKILL")


def free_port() -> int:
    """A loopback port the kernel considers free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    # SO_REUSEADDR as the servers use it: a port in TIME_WAIT still counts as free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path})"
    return "\n".join(text.splitlines()[-lines:])
