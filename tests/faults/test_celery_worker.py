"""A Celery worker's main process killed by its pid in the middle of a tool call: the call
still runs, exactly once, and the message the dead worker held does not run it again.

Everything here is a real process on a broker of the module's own (a Valkey started for
it): the agent's side of the call (tests/faults/tool_caller.py), two `celery worker`s
with the solo pool (so the task runs in the main process that is killed), and PostgreSQL
(the test database). The call is held mid-way by a table lock the test takes, so the kill
lands while the tool is running, not before or after.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from django.db import connection

from agents.models import ToolCall
from config.devservers import EmbeddedValkey
from ontology.models import Thing
from ontology.scoping import group_scope
from tests.conftest import make_tenant
from tests.servers import ROOT, _database_url

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = 60
VISIBILITY = 3  # seconds before the broker hands a dead worker's message to another


@pytest.fixture(scope="module")
def broker():
    server = EmbeddedValkey(Path(tempfile.mkdtemp(prefix="parley-broker-")), durable=False)
    server.start()
    try:
        yield server.url()
    finally:
        server.stop()


def environment(broker_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": broker_url,
        "PARLEY_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY),
    }


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str]):
    log = Path(tempfile.mkstemp(prefix="parley-fault-", suffix=".log")[1])
    with log.open("w") as out:
        child = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    try:
        yield child, log
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def worker(name: str, env: dict[str, str]):
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "tools"]
    command += ["--pool", "solo", "-n", f"{name}@%h", "--without-mingle", "--without-gossip"]
    return process(command, env)


def wait_for(condition, what: str, within: float = DEADLINE):
    """Poll a condition on other processes' state until it holds (a deadline, not a sleep)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def the_call(group, run_id) -> ToolCall | None:
    with group_scope(group):
        return ToolCall.objects.filter(run_id=run_id).first()


def tasks_made(group) -> int:
    with group_scope(group):
        return Thing.objects.filter(type=Thing.Type.TASK, name="Call back").count()


def lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def test_a_worker_killed_mid_call_leaves_the_call_to_run_exactly_once(broker):
    tenant = make_tenant("acme")
    group = tenant.group
    run_id = uuid.uuid4()
    env = environment(broker)
    caller_command = [sys.executable, "-m", "tests.faults.tool_caller"]
    caller_command += [str(group.pk), str(tenant.member.pk), str(run_id), str(DEADLINE)]
    with process(caller_command, env) as (caller, caller_log):
        # The call is recorded and on the broker; no worker runs yet.
        wait_for(lambda: the_call(group, run_id), "the call to be recorded")
        holder = psycopg.connect(_database_url())
        try:
            # Inserting the task's row waits for this lock: the tool stops there, mid-call. (A
            # row lock on its group would not do: foreign keys are checked at commit.)
            holder.execute("LOCK TABLE ontology_thing IN SHARE MODE")
            with worker("first", env) as (first, _):
                wait_for(
                    lambda: the_call(group, run_id).started_at and lock_waiters(),
                    "the first worker to be inside the tool",
                )
                os.kill(first.pid, signal.SIGKILL)
                first.wait()
            with worker("second", env) as (_, second_log):
                holder.rollback()  # the dead worker's transaction rolls back; the call is free
                try:
                    caller.wait(timeout=DEADLINE)
                except subprocess.TimeoutExpired:
                    pytest.fail(f"no outcome:\n{caller_log.read_text()[-3000:]}")
                outcome = json.loads(caller_log.read_text().strip().splitlines()[-1])
                assert outcome["ok"] is True, (outcome, second_log.read_text()[-3000:])
                assert outcome["result"]["title"] == "Call back"
                assert tasks_made(group) == 1
                call = the_call(group, run_id)
                assert (call.status, call.attempts) == (ToolCall.Status.OK, 2)

                # The dead worker's message comes back after the visibility timeout; the
                # second worker takes it and finds the call done.
                queue = redis.Redis.from_url(broker)
                wait_for(
                    lambda: queue.hlen("unacked") == 0 and queue.llen("tools") == 0,
                    "the dead worker's message to be delivered again and acknowledged",
                )
                assert tasks_made(group) == 1
                assert the_call(group, run_id).attempts == 2
        finally:
            holder.close()
