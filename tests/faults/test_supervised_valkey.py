"""`make run`'s Valkey: persistent, and started again on its port by the supervisor when it
dies, with what it had (a run's lock, a group's members) still there."""

import os
import signal

import redis

from config.devservers import Supervisor
from config.devservers.embedded import EmbeddedValkey


def test_a_killed_valkey_is_started_again_on_its_port_with_its_data(tmp_path, capsys):
    valkey = EmbeddedValkey(tmp_path / "valkey", durable=True)
    valkey.start()
    supervisor = Supervisor({}, env=dict(os.environ), servers={"Valkey": valkey})
    try:
        url, pid = valkey.url(), valkey.pid
        redis.Redis.from_url(url).set("parley:run-lock:1", "run channel", ex=60)

        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert not valkey.alive()
        supervisor.poll()

        assert valkey.alive() and valkey.pid != pid and valkey.url() == url
        assert redis.Redis.from_url(url).get("parley:run-lock:1") == b"run channel"
        assert "Valkey died; restarting it on the same port." in capsys.readouterr().out
    finally:
        supervisor.stop()
        valkey.stop()
