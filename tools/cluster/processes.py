"""The node's processes: started in the background (own session, log file, pid file), found again
by a later command through their pid file, and stopped by pid.

A pid file holds the pid and the process's start time (field 22 of /proc/<pid>/stat), so a pid
reused by another process after a crash is never taken for one of ours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tools.cluster.layout import Layout

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]  # state, then field 22 is index 19 after the name


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class Running:
    name: str
    pid: int


def pid_file(layout: Layout, name: str) -> Path:
    return layout.pids / f"{name}.pid"


def find(layout: Layout, name: str) -> Running | None:
    """The process `name` if its pid file names a live process started at the recorded time."""
    path = pid_file(layout, name)
    try:
        pid_text, started = path.read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_text)
    return Running(name, pid) if _start_time(pid) == started else None


def start(layout: Layout, name: str, argv: list[str], env: dict[str, str] | None = None) -> Running:
    """Start `argv` in its own session with stdout+stderr appended to logs/<name>.log."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.pids.mkdir(parents=True, exist_ok=True)
    log = (layout.logs / f"{name}.log").open("ab")
    log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
    log.flush()
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={"PATH": PATH, "HOME": str(Path.home()), "LANG": "C.UTF-8", **(env or {})},
        cwd=layout.node,
    )
    log.close()
    started = _start_time(process.pid)
    pid_file(layout, name).write_text(f"{process.pid} {started}\n")
    return Running(name, process.pid)


def exited(running: Running) -> bool:
    """True when the process has ended (reaping it if it is our child)."""
    try:
        waited, _ = os.waitpid(running.pid, os.WNOHANG)
        if waited == running.pid:
            return True
    except ChildProcessError:
        pass
    return _start_time(running.pid) is None


def stop_pid(pid: int, timeout: float = 20.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True when the process is gone."""
    running = Running("", pid)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if exited(running):
                return True
            time.sleep(0.1)
    return exited(running)


def stop(layout: Layout, name: str, timeout: float = 20.0) -> bool:
    """Stop the process of pid file `name` if it runs; True when something was stopped."""
    running = find(layout, name)
    pid_file(layout, name).unlink(missing_ok=True)
    if running is None:
        return False
    stop_pid(running.pid, timeout)
    return True


def pids_with_argument(argument: str) -> list[int]:
    """Live processes whose command line carries `argument` exactly (e.g. our containerd socket)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in args:
            found.append(int(entry.name))
    return found


def pids_in_cgroup(fragment: str) -> list[int]:
    """Live processes whose cgroup path (any hierarchy) contains `fragment` (e.g. /kubepods)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroups = (entry / "cgroup").read_text()
        except OSError:
            continue
        if any(line.split(":", 2)[-1].startswith(fragment) for line in cgroups.splitlines()):
            found.append(int(entry.name))
    return found


def log_tail(layout: Layout, name: str, lines: int = 15) -> str:
    path = layout.logs / f"{name}.log"
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
