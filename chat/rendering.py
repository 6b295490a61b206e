"""Answers as HTML: markdown rendered on the server, then sanitized, because model output is
untrusted input.

markdown-it-py renders with raw HTML off (a `<script>` in an answer shows as text), pygments
highlights fenced code, `$…$` and `$$…$$` become MathML (chat/mathml.py), numbered citations
`[n]` become links to the cited knowledge, and a trailing "Follow-up questions" list is lifted
out so the page can offer it as buttons. nh3 then keeps only the tags and attributes below,
whatever the steps before let through: no script, no event handlers, no `javascript:` URLs.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import nh3
from django.urls import reverse
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from chat.mathml import MATH_ATTRIBUTES, MATH_TAGS, latex_to_mathml

ALLOWED_TAGS = {
    "a",
    "blockquote",
    "br",
    "code",
    "del",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "span",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
    *MATH_TAGS,
}
ALLOWED_ATTRIBUTES = {
    **MATH_ATTRIBUTES,
    "a": {"href", "title", "class"},
    "code": {"class"},
    "div": {"class"},
    "pre": {"class", "data-lang"},
    "span": {"class"},
    "td": {"style"},
    "th": {"style"},
    "ol": {"start"},
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}
ALLOWED_STYLES = {"text-align"}
MAX_FOLLOW_UPS = 4

_CITATION = re.compile(r"\[(\d{1,3})\]")
_FOLLOW_UP_HEADING = re.compile(
    r"^\s*(?:#{1,6}\s*)?(?:\*\*|__)?\s*(?:suggested\s+)?follow[- ]?ups?(?:\s+questions)?\s*:?"
    r"\s*(?:\*\*|__)?\s*:?\s*$",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,2}[.)])\s+(.+?)\s*$")


@dataclass(frozen=True)
class RenderedAnswer:
    html: str
    follow_ups: list[str] = field(default_factory=list)


def render_answer(content: str, *, sources: Iterable[Mapping[str, Any]] = ()) -> RenderedAnswer:
    """Safe HTML for an assistant message, with its citations linked and follow-ups apart."""
    body, follow_ups = split_follow_ups(content)
    links = _citation_links(sources)
    unsafe = _markdown().render(body, {"citations": links})
    return RenderedAnswer(html=sanitize(unsafe), follow_ups=follow_ups)


def sanitize(unsafe_html: str) -> str:
    return nh3.clean(
        unsafe_html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        filter_style_properties=ALLOWED_STYLES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def split_follow_ups(content: str) -> tuple[str, list[str]]:
    """Lift a trailing "Follow-up questions:" list out of an answer.

    Agents are asked (in their system prompt) to end with such a list when they have
    suggestions; only a list that closes the answer counts, so a heading mid-answer is left.
    """
    lines = content.rstrip().splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if _FOLLOW_UP_HEADING.match(lines[index]):
            items = [line for line in lines[index + 1 :] if line.strip()]
            matches = [_LIST_ITEM.match(line) for line in items]
            if not items or not all(matches):
                return content, []
            questions = [_plain(match.group(1)) for match in matches if match]
            body = "\n".join(lines[:index]).rstrip()
            return body, [q for q in questions if q][:MAX_FOLLOW_UPS]
    return content, []


def _plain(text: str) -> str:
    """A follow-up is sent back as the user's words: drop markdown emphasis and quotes."""
    return text.replace("**", "").replace("__", "").strip().strip("\"'`“”").strip()[:300]


def _citation_links(sources: Iterable[Mapping[str, Any]]) -> dict[int, tuple[str, str]]:
    links = {}
    for item in sources:
        try:
            number, knowledge_id = int(item["n"]), int(item["knowledge_id"])
        except (KeyError, TypeError, ValueError):
            continue
        url = reverse("knowledge-detail", args=[knowledge_id])
        links[number] = (url, str(item.get("title", "")))
    return links


def _link_citations(state: StateCore) -> None:
    """Turn `[n]` in text into a link to source n; unknown numbers stay plain text."""
    links = state.env.get("citations") or {}
    if not links:
        return
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        inside_link = 0
        for token in block.children:
            inside_link += token.type == "link_open"
            inside_link -= token.type == "link_close"
            if token.type != "text" or inside_link or "[" not in token.content:
                children.append(token)
                continue
            children.extend(_split_citations(token.content, links))
        block.children = children


def _split_citations(text: str, links: dict[int, tuple[str, str]]) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    for match in _CITATION.finditer(text):
        target = links.get(int(match.group(1)))
        if target is None:
            continue
        if match.start() > position:
            tokens.append(_text(text[position : match.start()]))
        url, title = target
        opening = Token("link_open", "a", 1)
        opening.attrs = {"href": url, "class": "cite", "title": title}
        tokens += [opening, _text(match.group(0)), Token("link_close", "a", -1)]
        position = match.end()
    if position < len(text):
        tokens.append(_text(text[position:]))
    return tokens


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _highlight(code: str, language: str, _attrs: str) -> str:
    """A highlighted block in a frame the page gives a copy button; plain when unknown."""
    label = html.escape(language or "text")
    try:
        lexer = get_lexer_by_name(language) if language else None
    except ClassNotFound:
        lexer = None
    body = pygments_highlight(code, lexer, _formatter()) if lexer is not None else html.escape(code)
    # Starts with <pre, so markdown-it uses it as the whole block.
    return f'<pre class="codeblock" data-lang="{label}"><code class="highlight">{body}</code></pre>'


@cache
def _formatter() -> HtmlFormatter:
    return HtmlFormatter(nowrap=True)


def _math_inline(_renderer: Any, tokens: list[Token], idx: int, _options: Any, _env: Any) -> str:
    return f'<span class="math">{latex_to_mathml(tokens[idx].content, display=False)}</span>'


def _math_display(_renderer: Any, tokens: list[Token], idx: int, _options: Any, _env: Any) -> str:
    """`$$…$$`: a block of its own, or (inside a paragraph) a span laid out as one."""
    mathml = latex_to_mathml(tokens[idx].content, display=True)
    if tokens[idx].type == "math_inline_double":
        return f'<span class="math display">{mathml}</span>'
    return f'<div class="math display">{mathml}</div>\n'


@cache
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    # Prose dollars stay prose: no math when a space follows the opening `$` or precedes the
    # closing one ("costs $5 and $10"), or a digit touches the outside of either.
    dollarmath_plugin(
        md, allow_labels=False, allow_space=False, allow_digits=False, double_inline=True
    )
    md.add_render_rule("math_inline", _math_inline)
    md.add_render_rule("math_inline_double", _math_display)
    md.add_render_rule("math_block", _math_display)
    md.core.ruler.push("parley_citations", _link_citations)
    return md
