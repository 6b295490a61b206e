"""Server-sent events as the real APIs frame them."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


async def start_stream(request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers}
    )
    await response.prepare(request)
    return response


async def send_event(
    response: web.StreamResponse, data: dict[str, Any] | str, event: str | None = None
) -> None:
    payload = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    await response.write(f"{prefix}data: {payload}\n\n".encode())


def split_json(text: str) -> list[str]:
    """Split arguments JSON into up to three fragments, as real streams deliver them."""
    third = max(1, len(text) // 3)
    pieces = [text[:third], text[third : 2 * third], text[2 * third :]]
    return [piece for piece in pieces if piece] or [""]
