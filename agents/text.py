"""Text from a model, made storable: Postgres text and jsonb hold no NUL and no lone surrogate."""

from typing import Any


def storable_text(text: str) -> str:
    """The text without NUL characters and with any lone surrogate replaced by "?"."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode(errors="replace").decode()
    return text


def storable(value: Any) -> Any:
    """A JSON-like value with every string (keys too) made storable: model output and
    tool arguments are untrusted, and one bad string must not fail a write."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value
