"""Which behaviour a request asks for: a ``@name;key=value`` suffix on the model id, or a header."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

SCENARIO_HEADER = "X-Simulator-Scenario"
SCENARIOS = frozenset(
    {
        "offline",
        "text",
        "tool_call",
        "parallel_tools",
        "tool_loop",
        "rate_limited_once",
        "rate_limited",
        "server_error",
        "server_error_once",
        "context_length",
        "disconnect",
        "slow",
    }
)
COUNTED_SCENARIOS = frozenset({"rate_limited_once", "server_error_once"})
DEFAULT_SCENARIO = "offline"


@dataclass(frozen=True)
class Scenario:
    """A scenario name and its raw ``key=value`` parameters, as written after the ``@``."""

    name: str = DEFAULT_SCENARIO
    params: Mapping[str, str] = field(default_factory=dict)

    def number(self, key: str, default: float) -> float:
        if key not in self.params:
            return default
        try:
            value = float(self.params[key])
        except ValueError:
            raise ValueError(f"Scenario parameter {key!r} must be a number") from None
        if value < 0:
            raise ValueError(f"Scenario parameter {key!r} must not be negative")
        return value

    def integer(self, key: str, default: int) -> int:
        return int(self.number(key, default))


def parse_scenario(spec: str | None) -> Scenario:
    """Parse ``name[;key=value]*``; an empty spec is the default scenario.

    A value that starts like JSON (``{``, ``[`` or ``"``) and decodes is taken whole, so
    ``args={"q": "a;b"}`` keeps its semicolon; one that does not decode (tests send broken
    arguments on purpose) ends at the next ``;``.
    """
    spec = (spec or "").strip()
    if not spec:
        return Scenario()
    name, _, rest = spec.partition(";")
    name = name.strip()
    if name not in SCENARIOS:
        known = ", ".join(sorted(SCENARIOS))
        raise ValueError(f"Unknown simulator scenario {name!r} (known: {known})")
    params: dict[str, str] = {}
    decoder = json.JSONDecoder()
    position = 0
    while position < len(rest):
        key_end = rest.find("=", position)
        next_separator = rest.find(";", position)
        if key_end < 0 or (0 <= next_separator < key_end):
            raise ValueError(f"Scenario parameter without a value in {spec!r}")
        key = rest[position:key_end].strip()
        value_start = key_end + 1
        value_end = rest.find(";", value_start)
        value_end = len(rest) if value_end < 0 else value_end
        if rest[value_start : value_start + 1] in ("{", "[", '"'):
            try:
                _, json_end = decoder.raw_decode(rest, value_start)
            except json.JSONDecodeError:
                pass
            else:
                if json_end == len(rest) or rest[json_end] == ";":
                    value_end = json_end
        params[key] = rest[value_start:value_end]
        position = value_end + 1
    return Scenario(name=name, params=params)


def split_model(model: str) -> tuple[str, str | None]:
    """``"sim-gpt@tool_call;tool=x"`` → ``("sim-gpt", "tool_call;tool=x")``; no ``@`` → None."""
    base, at, spec = model.partition("@")
    return base, (spec if at else None)
