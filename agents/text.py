"""Text from a model, made storable: Postgres text and jsonb hold no NUL and no lone surrogate."""


def storable_text(text: str) -> str:
    """The text without NUL characters and with any lone surrogate replaced by "?"."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode(errors="replace").decode()
    return text
