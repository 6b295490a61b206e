"""`make test` and `exec`: a command against throwaway servers; Chromium for browser tests."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

from config.devservers.common import ROOT, DevServerError, say
from config.devservers.embedded import servers, throwaway_dir


def run_command(command: list[str], *, extra_env: dict[str, str] | None = None) -> int:
    """Run `command` against throwaway servers and return its exit code."""
    with throwaway_dir() as base, servers(base, durable=False) as server_env:
        env = {
            **os.environ,
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
            **server_env,
            **(extra_env or {}),
        }
        return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode  # noqa: S603


def ensure_chromium() -> None:
    """Browser tests drive Debian's Chromium; install it where it is missing (CI machines)."""
    if os.environ.get("PARLEY_CHROMIUM") or shutil.which("chromium"):
        return
    say("installing Debian's chromium for the browser tests")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        result = subprocess.run([*sudo, *command], env=env, check=False)  # noqa: S603
        if result.returncode != 0:
            raise DevServerError(
                "Could not install chromium (needed by the browser tests). Install it with "
                "`apt-get install chromium`, or set PARLEY_CHROMIUM to a Chromium binary."
            )
