"""A real PostgreSQL server (Debian's package) for the test session, on loopback.

Installs the package when it is missing (as root, with apt-get), initialises a throw-away
cluster with trust authentication on 127.0.0.1 and a free port, and stops it afterwards.
initdb refuses to run as root, so as root the server runs as the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.api_process import free_port
from tools.toolchain import apt_install


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def ensure_installed() -> Path:
    if _bin_dir() is None:
        apt_install("postgresql")
    bin_dir = _bin_dir()
    assert bin_dir is not None, "postgresql installed but no initdb found"
    return bin_dir


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str, password: str | None = None) -> str:
        """Trust authentication accepts any password: pass one to see it stays out of every output."""
        user = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True)

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args)

    @classmethod
    def start(cls) -> PostgresServer:
        bin_dir = ensure_installed()
        root = Path(tempfile.mkdtemp(prefix="streamflow-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        server = cls(bin_dir, root, free_port())
        server._run(
            str(bin_dir / "initdb"),
            "-D",
            str(server.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        server.resume()
        return server

    def resume(self) -> None:
        """Start the server on its data directory (first start, or after `halt`)."""
        # TimeZone deliberately not UTC: proves snapshot dates survive a non-UTC session zone.
        options = (
            f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off -c TimeZone=America/New_York"
        )
        self._pg_ctl("-o", options, "-l", str(self.root / "server.log"), "-w", "start")

    def halt(self) -> None:
        """A real outage: stop the server, its clients' connections cut, its data kept for `resume`."""
        self._pg_ctl("-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        self._run(str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def stop(self) -> None:
        try:
            self.halt()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
