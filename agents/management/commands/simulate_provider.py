"""Serve the provider simulator for the offline demo and benchmarks, until Ctrl-C."""

from typing import Any

from aiohttp import web
from django.core.management.base import BaseCommand, CommandParser

from agents.simulator import SimulatorConfig, SimulatorState, build_app


class Command(BaseCommand):
    help = (
        "Run the OpenAI/Anthropic provider simulator. Point OpenAI clients at <url>/v1 and "
        "Anthropic clients at <url>; pick behaviours with a model suffix like "
        "'sim-gpt@tool_call' or the X-Simulator-Scenario header."
    )
    # The simulator never touches the database, so it must start without one.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--ttft-ms", type=float, default=0.0, help="Delay before the first token."
        )
        parser.add_argument(
            "--tokens-per-second", type=float, default=0.0, help="0 streams without delay."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        config = SimulatorConfig(
            ttft_ms=options["ttft_ms"], tokens_per_second=options["tokens_per_second"]
        )
        url = f"http://{host}:{port}"
        self.stdout.write(
            f"Provider simulator on {url} (OpenAI base {url}/v1, Anthropic base {url}). "
            "Ctrl-C to stop."
        )
        # Nobody reads the logs of a standalone server; keeping them would grow without bound.
        app = build_app(state=SimulatorState(config=config, record=False))
        web.run_app(app, host=host, port=port, print=None)
