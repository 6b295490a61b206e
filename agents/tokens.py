"""A local token counter: for trimming context and for estimating usage no provider reported.

Real tokenizers (tiktoken's BPE files) are downloaded at run time, which this
platform cannot rely on, so this approximates BPE closely enough for English:
words split into pieces of at most six characters, punctuation on its own, the
preceding whitespace attached. The provider simulator tokenizes with the same
function, so its "exact" counts and these estimates agree in tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PIECE = re.compile(r"\s*(?:\w{1,6}|[^\w\s])|\s+")

MESSAGE_OVERHEAD = 4  # role and separators, as chat formats add per message


def split_tokens(text: str) -> list[str]:
    """Split text into tokens whose concatenation is the text itself."""
    return _PIECE.findall(text)


def count_tokens(text: str) -> int:
    return len(_PIECE.findall(text)) if text else 0


def count_message_tokens(contents: Iterable[str]) -> int:
    return sum(count_tokens(content) + MESSAGE_OVERHEAD for content in contents)
