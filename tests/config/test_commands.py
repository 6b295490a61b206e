"""The two commands' machinery: exit codes reach CI, production settings pass check --deploy."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.management import call_command

from agents.models import Agent, KnowledgeSource
from ontology.models import Group, Membership
from ontology.scoping import group_scope

ROOT = Path(__file__).resolve().parents[2]


def run(args, tmp_path=None, **env):
    # DATABASE_URL / REDIS_URL are inherited, so the runner starts no servers of its own.
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(("body", "code"), [("assert 1 + 1 == 3", 1), ("assert True", 0)])
def test_the_test_command_exits_with_pytests_code(tmp_path, body, code):
    test_file = tmp_path / "test_sample.py"
    test_file.write_text(f"def test_sample():\n    {body}\n")
    result = run(
        [
            "-m",
            "config.devservers",
            "test",
            str(test_file),
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
        ],
    )
    assert result.returncode == code, result.stdout + result.stderr


def test_exec_passes_the_server_urls_and_the_exit_code():
    script = textwrap.dedent("""
        import os, sys
        assert os.environ["DATABASE_URL"].startswith("postgres")
        assert os.environ["REDIS_URL"].startswith("redis")
        sys.exit(7)
    """)
    result = run(["-m", "config.devservers", "exec", "--", sys.executable, "-c", script])
    assert result.returncode == 7, result.stderr
    assert "using DATABASE_URL" in result.stdout


def test_production_settings_pass_check_deploy():
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="x7#kP2!vQ9@mZ4$wL8^nR1&tY6*bC3(dF5)gH0_jK-eM+uN=sA",
        DJANGO_ALLOWED_HOSTS="parley.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_a_missing_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**env, "DJANGO_DEBUG": "0"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_seed_demo_creates_the_demo_tenant_once(db, settings):
    settings.PARLEY_DEMO_SEED_ALLOWED = True
    call_command("seed_demo")
    call_command("seed_demo")
    group = Group.objects.get(slug="acme")
    assert group.name == "Acme Corp"
    with group_scope(group):
        roles = dict(Membership.objects.values_list("user__username", "role"))
        assert roles == {"owner@acme.example": "owner", "member@acme.example": "member"}
        assert list(Agent.objects.values_list("name", flat=True)) == ["Acme Assistant"]
        # Demo knowledge is queued for the embeddings worker `make run` starts.
        assert sorted(KnowledgeSource.objects.values_list("title", "status")) == [
            ("Expense claims", "queued"),
            ("Office hours", "queued"),
            ("Refund policy", "queued"),
            ("Travel policy", "queued"),
        ]


def test_seed_demo_is_off_in_production(db, settings):
    settings.PARLEY_DEMO_SEED_ALLOWED = False
    with pytest.raises(Exception, match="Demo seeding is off"):
        call_command("seed_demo")
    assert not Group.objects.filter(slug="acme").exists()


def test_make_run_announces_itself_once_daphne_answers_and_the_simulator_listens():
    """`make run` prints its URL when the platform serves: its web socket listens before any
    daphne starts, so a connection alone is not enough; an HTTP answer is."""
    import socket
    import threading

    from config.devservers import free_port, listening_socket, serving

    port, simulator = free_port(), socket.create_server(("127.0.0.1", 0))
    simulator_port = simulator.getsockname()[1]
    with simulator, listening_socket("127.0.0.1", port) as web:
        assert not serving("127.0.0.1", port, simulator_port)  # listening, nobody answering

        stop = threading.Event()

        def answer():
            web.settimeout(0.05)
            while not stop.is_set():
                try:
                    client, _ = web.accept()
                except TimeoutError:
                    continue
                with client:
                    client.sendall(b"HTTP/1.0 200 OK\r\n\r\n")

        daphne = threading.Thread(target=answer)
        daphne.start()
        try:
            assert serving("127.0.0.1", port, simulator_port)
            assert serving("0.0.0.0", port, None)  # noqa: S104 (bound to all: asked on loopback)
            simulator.close()
            assert not serving("127.0.0.1", port, simulator_port)
        finally:
            stop.set()
            daphne.join()
