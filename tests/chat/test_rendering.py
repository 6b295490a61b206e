"""Model output is untrusted: what the renderer lets through, and what it turns into links."""

from html.parser import HTMLParser

import pytest

from chat.rendering import render_answer, sanitize, split_follow_ups

SOURCES = [{"n": 1, "knowledge_id": 7, "title": 'Refund "policy"'}, {"n": 2, "knowledge_id": 9}]


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[click](vbscript:msgbox(1))",
        '<iframe src="https://evil.example"></iframe>',
        "<svg onload=alert(1)>",
        '[x](https://ok.example "title" onmouseover="alert(1)")',
        "![img](https://evil.example/track.png)",
        "```html\n<script>alert(1)</script>\n```",
    ],
)
def test_nothing_executable_survives(attack):
    html = render_answer(attack).html
    tags = elements(html)
    assert {tag for tag, _ in tags} <= {"p", "a", "pre", "code", "span"}, html
    for _, attributes in tags:
        assert not [name for name in attributes if name.startswith("on")], html
        href = (attributes.get("href") or "https://").lower()
        assert href.startswith(("https://", "http://", "/")), html


def elements(html: str) -> list[tuple[str, dict]]:
    found = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Collector().feed(html)
    return found


def test_sanitize_is_the_last_word_even_on_raw_html():
    html = sanitize('<p onclick="x()">hi</p><a href="javascript:x()">a</a><pre class="codeblock">')
    assert "onclick" not in html and "javascript" not in html and "<p>hi</p>" in html


def test_citations_link_to_their_knowledge_outside_code_and_links():
    html = render_answer(
        "See [1] and [2], not [3]. `code [1]` and [a [1] link](https://x.example)",
        sources=SOURCES,
    ).html
    assert '<a href="/knowledge/7/" class="cite" title="Refund &quot;policy&quot;"' in html
    assert '<a href="/knowledge/9/" class="cite"' in html
    assert "[3]" in html and "/knowledge/3/" not in html
    assert "<code>code [1]</code>" in html
    assert html.count('class="cite"') == 2


def test_code_is_highlighted_and_unknown_languages_stay_plain():
    html = render_answer("```python\ndef f(): pass\n```\n\n```nosuchlang\n<b>x</b>\n```").html
    python = '<pre class="codeblock" data-lang="python"><code class="highlight"><span class="k">def'
    assert python in html
    assert '<pre class="codeblock" data-lang="nosuchlang"><code class="highlight">&lt;b&gt;' in html


def test_tables_and_emphasis_render():
    html = render_answer("| a | b |\n|:-|-:|\n| **1** | ~~2~~ |").html
    assert '<th style="text-align:left">a</th>' in html
    assert "<strong>1</strong>" in html and "<s>2</s>" in html


def test_follow_ups_only_count_when_they_close_the_answer():
    body, questions = split_follow_ups(
        'Answer.\n\n**Suggested follow-ups:**\n1. First?\n2. "Second?"\n'
    )
    assert (body, questions) == ("Answer.", ["First?", "Second?"])
    text = "Follow-up questions:\n- one\n\nThen more prose after the list."
    assert split_follow_ups(text) == (text, [])
    assert split_follow_ups("Nothing to suggest.") == ("Nothing to suggest.", [])


def test_links_get_safe_rel():
    html = render_answer("[docs](https://docs.example)").html
    assert 'rel="noopener noreferrer nofollow"' in html
