"""What a node changes on the host, recorded before it starts and put back by `down`.

The kubelet rewrites kernel tunables (kernel.panic, kernel.panic_on_oops, vm.overcommit_memory,
kernel.keys.root_maxkeys/maxbytes, ...), the CNI bridge turns on IP forwarding, kube-proxy and
the portmap plugin add iptables chains, the kubelet creates cgroups, CNI creates a bridge and veth
pairs, and containerd/the kubelet mount pod volumes, root filesystems and network namespaces.
`record()` writes the host's state to node/host.json before anything starts; `restore()` undoes
every difference and returns what it did, and `leftovers()` lists what is still not as recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tools.cluster.layout import BRIDGE, HOST_PATHS, Layout

PROC_SYS = Path("/proc/sys")
# Writable but changed by the kernel itself all the time (or only ever upward): never restored.
VOLATILE_SYSCTLS = {"kernel.ns_last_pid", "kernel.tainted", "kernel.random.boot_id"}
CGROUP_ROOT = Path("/sys/fs/cgroup")
IPTABLES = (("iptables-save", "iptables-restore", "iptables"), ("ip6tables-save", "ip6tables-restore", "ip6tables"))


def read_sysctls() -> dict[str, str]:
    """Every readable and writable sysctl of the host (its network namespace), by dotted name."""
    values = {}
    for directory, _, files in os.walk(PROC_SYS):
        for name in files:
            path = Path(directory, name)
            try:
                if not path.stat().st_mode & 0o200:
                    continue
                values[".".join(path.relative_to(PROC_SYS).parts)] = path.read_text().strip()
            except OSError:  # write-only (vm.drop_caches, ...) or refused
                continue
    return values


def write_sysctl(key: str, value: str) -> None:
    (PROC_SYS / key.replace(".", "/")).write_text(value + "\n")


def _iptables_rules(save: str) -> str | None:
    """The ruleset without comments and counters, or None when the tool is missing."""
    if shutil.which(save) is None:
        return None
    result = subprocess.run([save], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    return "".join(line + "\n" for line in result.stdout.splitlines() if not line.startswith("#"))


def _nft_tables() -> list[str] | None:
    """`nft list tables` (iptables-nft makes its tables on first use; flushing them leaves them)."""
    if shutil.which("nft") is None:
        return None
    result = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False)
    return sorted(result.stdout.splitlines()) if result.returncode == 0 else None


def _mount_points() -> list[str]:
    """Mount points of this mount namespace, in mount order (/proc/self/mountinfo)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        points.append(point)
    return points


def _links() -> list[str]:
    result = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True)
    return [line.split(":")[1].strip().split("@")[0] for line in result.stdout.splitlines()]


def _cgroup_hierarchies() -> list[Path]:
    if not CGROUP_ROOT.is_dir():
        return []
    return [path for path in sorted(CGROUP_ROOT.iterdir()) if path.is_dir() and not path.is_symlink()]


@dataclass
class HostRecord:
    sysctls: dict[str, str]
    iptables: dict[str, str | None]
    mounts: list[str]
    links: list[str]
    paths: dict[str, bool]
    cgroups: dict[str, list[str]] = field(default_factory=dict)  # hierarchy -> top-level child cgroups
    nft_tables: list[str] | None = None  # "table ip nat", ...

    @classmethod
    def take(cls) -> HostRecord:
        return cls(
            sysctls=read_sysctls(),
            iptables={save: _iptables_rules(save) for save, _, _ in IPTABLES},
            nft_tables=_nft_tables(),
            mounts=_mount_points(),
            links=_links(),
            paths={str(path): path.exists() for path in HOST_PATHS},
            cgroups={
                str(hierarchy): sorted(child.name for child in hierarchy.iterdir() if child.is_dir())
                for hierarchy in _cgroup_hierarchies()
            },
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> HostRecord:
        return cls(**json.loads(path.read_text()))


def record(layout: Layout) -> HostRecord:
    """Record the host before the node starts; a record already there (a node that crashed and is
    started again) is kept: it is the state from before the first start."""
    if layout.host_record.exists():
        return HostRecord.load(layout.host_record)
    layout.node.mkdir(parents=True, exist_ok=True)
    taken = HostRecord.take()
    taken.save(layout.host_record)
    return taken


def ours(point: str, layout: Layout) -> bool:
    """A mount point the node made: under its state dir or one of the host paths it uses."""
    roots = [str(layout.node), *(str(path) for path in HOST_PATHS)]
    return any(point == root or point.startswith(root + "/") for root in roots)


def unmount_all(layout: Layout, before: list[str]) -> list[str]:
    """Unmount, deepest and newest first, every mount point of ours that was not there before."""
    done = []
    for _ in range(5):  # a mount can hide another at the same point: go round until none is left
        points = [point for point in _mount_points() if ours(point, layout) and point not in before]
        if not points:
            break
        for point in reversed(points):
            result = subprocess.run(["umount", point], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True, text=True, check=False)
            done.append(point)
    return done


def restore_sysctls(recorded: dict[str, str]) -> tuple[list[str], list[str]]:
    """Write back every recorded sysctl that differs now; returns (restored, failed) descriptions."""
    now = read_sysctls()
    restored, failed = [], []
    for key, value in sorted(recorded.items()):
        if key in VOLATILE_SYSCTLS or key not in now or now[key] == value:
            continue
        try:
            write_sysctl(key, value)
            restored.append(f"{key}: {now[key]!r} -> {value!r}")
        except OSError as error:
            failed.append(f"{key}: {now[key]!r}, recorded {value!r}: {error}")
    return restored, failed


def restore_iptables(recorded: dict[str, str | None]) -> list[str]:
    """Put back the recorded rulesets (flush every table, delete every chain, restore)."""
    done = []
    for save, restore, command in IPTABLES:
        before, now = recorded.get(save), _iptables_rules(save)
        if before is None or now is None or before == now:
            continue
        tables = [line[1:].strip() for line in now.splitlines() if line.startswith("*")]
        for table in tables:
            subprocess.run([command, "-t", table, "-F"], capture_output=True, check=False)
            subprocess.run([command, "-t", table, "-X"], capture_output=True, check=False)
        if before.strip():
            subprocess.run([restore], input=before, text=True, capture_output=True, check=True)
        done.append(f"{command}: tables {', '.join(tables)} restored to the recorded rules")
    return done


def remove_nft_tables(recorded: list[str] | None) -> list[str]:
    """Delete the netfilter tables that did not exist before (emptied by restore_iptables first)."""
    now = _nft_tables()
    if recorded is None or now is None:
        return []
    removed = []
    for table in now:
        if table not in recorded:
            _, family, name = table.split()
            subprocess.run(["nft", "delete", "table", family, name], capture_output=True, check=False)
            removed.append(table)
    return removed


def remove_links(recorded_links: list[str]) -> list[str]:
    """Delete the CNI bridge and the veth pairs the node created (only links that were not there)."""
    removed = []
    for link in _links():
        if link in recorded_links or not (link == BRIDGE or link.startswith("veth")):
            continue
        subprocess.run(["ip", "link", "delete", link], capture_output=True, check=False)
        removed.append(link)
    return removed


def remove_cgroups(recorded: dict[str, list[str]]) -> list[str]:
    """Remove the cgroups the kubelet created (kubepods, ...): empty ones, deepest first."""
    removed = []
    for hierarchy, children in recorded.items():
        root = Path(hierarchy)
        if not root.is_dir():
            continue
        for child in sorted(path for path in root.iterdir() if path.is_dir() and path.name not in children):
            for directory in sorted((p for p in child.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            try:
                child.rmdir()
                removed.append(str(child))
            except OSError:
                pass
    return removed


def remove_paths(recorded: dict[str, bool]) -> list[str]:
    """Remove the host directories the node created (they were absent before)."""
    removed = []
    for path, existed in recorded.items():
        if not existed and Path(path).exists():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def leftovers(layout: Layout, recorded: HostRecord) -> list[str]:
    """Everything still not as recorded: mounts, links, sysctls, iptables, host paths, cgroups."""
    problems = [
        f"mounted: {point}" for point in _mount_points() if ours(point, layout) and point not in recorded.mounts
    ]
    problems += [f"link: {link}" for link in _links() if link not in recorded.links]
    now = read_sysctls()
    problems += [
        f"sysctl {key} = {now[key]!r}, recorded {value!r}"
        for key, value in recorded.sysctls.items()
        if key not in VOLATILE_SYSCTLS and key in now and now[key] != value
    ]
    problems += [
        f"{save}: rules differ from the record"
        for save, before in recorded.iptables.items()
        if before is not None and _iptables_rules(save) not in (None, before)
    ]
    tables = _nft_tables()
    if recorded.nft_tables is not None and tables is not None:
        problems += [f"nftables: {table}" for table in tables if table not in recorded.nft_tables]
    problems += [f"path: {path}" for path, existed in recorded.paths.items() if not existed and Path(path).exists()]
    for hierarchy, children in recorded.cgroups.items():
        root = Path(hierarchy)
        if root.is_dir():
            problems += [
                f"cgroup: {child}" for child in root.iterdir() if child.is_dir() and child.name not in children
            ]
    return problems
