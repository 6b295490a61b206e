"""Production static files: collectstatic's hashed chat modules import each other by hashed name."""

import json
import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path

from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]
IMPORT = re.compile(r"""\b(?:import|from)\s*["']([^"']+)["']""")


def production_static_backend() -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.STORAGES['staticfiles']['BACKEND'])",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "x7#kP2!vQ9@mZ4$wL8^nR1&tY6*bC3(dF5)gH0_jK-eM+uN=sA",
        },
    )
    return result.stdout.strip()


def test_collected_chat_modules_import_their_hashed_siblings(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": production_static_backend()},
    }
    call_command("collectstatic", interactive=False, verbosity=0)

    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    modules = {name: hashed for name, hashed in manifest.items() if name.startswith("js/chat/")}
    assert "js/chat/main.js" in modules
    imported = set()
    for hashed in modules.values():
        for url in IMPORT.findall((tmp_path / hashed).read_text()):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(hashed), url))
            # A hashed name changes with its content, so a cached main.js never mixes versions.
            assert target in modules.values(), f"{hashed} imports {url}, not a hashed module"
            assert (tmp_path / target).is_file()
            imported.add(target)
    assert imported == set(modules.values()) - {modules["js/chat/main.js"]}
