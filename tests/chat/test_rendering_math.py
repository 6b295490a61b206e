"""LaTeX in answers becomes MathML on the server; prose dollars, bad LaTeX and anything
executable hidden in a formula do not."""

from html import escape as html_escape

import pytest

from chat.mathml import MATH_ATTRIBUTES, MATH_TAGS, latex_to_mathml
from chat.rendering import render_answer
from tests.chat.test_rendering import elements


def test_inline_math_becomes_mathml_inside_the_paragraph():
    html = render_answer(r"Euler: $e^{i\pi} + 1 = 0$, famously.").html
    assert html.startswith('<p>Euler: <span class="math"><math display="inline">')
    assert "<msup><mi>e</mi><mrow><mi>i</mi><mi>π</mi></mrow></msup>" in html
    assert "<mo>+</mo><mn>1</mn><mo>=</mo><mn>0</mn>" in html
    assert html.endswith("</math></span>, famously.</p>\n")


def test_display_math_as_a_block_and_inside_a_paragraph():
    block = render_answer("Area:\n\n$$\n\\frac{a}{b}\n$$\n\nDone.").html
    assert '<div class="math display"><math display="block"><mrow><mfrac>' in block
    assert "<p>Done.</p>" in block
    inline = render_answer(r"So $$x^2$$ holds.").html
    assert '<p>So <span class="math display"><math display="block">' in inline


@pytest.mark.parametrize(
    "prose",
    [
        "It costs $5 and $10 with tax.",
        "Between $5-$10 a month.",
        "Pay $5/$6 per seat.",
        "Prices: $5, or $20.",
        "Plans are $ 10 and 20 $ per year.",
        r"Escaped \$x\$ stays text.",
    ],
)
def test_dollar_amounts_in_prose_stay_prose(prose):
    html = render_answer(prose).html
    assert "<math" not in html and 'class="math' not in html, html
    assert "$" in html


def test_math_in_code_is_left_as_code():
    html = render_answer("`$x^2$` and\n\n```\n$$y$$\n```").html
    assert "<math" not in html
    assert "<code>$x^2$</code>" in html


@pytest.mark.parametrize("bad", [r"\frac{1}{", r"x^", r"\begin{pmatrix}1 & 2"])
def test_bad_latex_shows_its_source_and_keeps_the_answer(bad):
    html = render_answer(f"Before ${bad}$ after **bold**.").html
    assert "<math" not in html
    assert f'<code class="math-source">${html_escape(bad, quote=False)}$</code>' in html
    assert html.startswith("<p>Before ") and "after <strong>bold</strong>." in html


@pytest.mark.parametrize(
    "attack",
    [
        r"\href{javascript:alert(1)}{click}",
        r"\text{<script>alert(1)</script>}",
        r"\text{<img src=x onerror=alert(1)>}",
        r"\style{position:fixed;inset:0}{x}",
        r"\class{skip-link}{x}",
        r"\color{red}{x}\colorbox{blue}{y}",
        r"\mathrm{</math><img src=x onerror=alert(1)>}",
    ],
)
def test_nothing_executable_survives_inside_math(attack):
    html = render_answer(f"${attack}$ and $$ {attack} $$").html
    assert "<math" in html, html
    for tag, attributes in elements(html):
        assert tag in MATH_TAGS | {"p", "span", "code"}, html
        assert set(attributes) <= MATH_ATTRIBUTES.get(tag, set()) | {"class"}, html
        if tag != "span" and tag != "code":
            assert "class" not in attributes, html
        assert not any(name.startswith("on") or name in {"href", "style"} for name in attributes)
    assert "javascript" not in html
    assert "<script" not in html and "<img" not in html


def test_text_in_formulas_is_escaped_once():
    # latex2mathml's own convert() would un-escape this into markup.
    html = latex_to_mathml(r"\text{a < b & <b>c</b>}", display=False)
    assert "<b>" not in html
    assert "a\xa0&lt;\xa0b\xa0&amp;\xa0&lt;b&gt;c&lt;/b&gt;" in html


def test_very_long_formulas_are_shown_as_source():
    html = latex_to_mathml("x+" * 3000 + "x", display=True)
    assert html.startswith('<code class="math-source">$$x+x+')


def test_the_allowlist_covers_what_the_converter_emits_for_common_math():
    samples = [
        r"\sum_{i=0}^{n} x_i^2",
        r"\int_0^1 f(x)\,dx",
        r"\sqrt[3]{x} \le \infty",
        r"\begin{pmatrix}1 & 2 \\ 3 & 4\end{pmatrix}",
        r"\overbrace{a+b}^{c}",
        r"\hat{x} \cdot \vec{v}",
        r"\boxed{x} \cancel{y}",
        r"\mathbb{R} \mathbf{v} \mathcal{L}",
        r"\left( \frac{a}{b} \right)",
        r"\lim_{x \to 0} \frac{\sin x}{x} = 1",
    ]
    for latex in samples:
        raw = latex_to_mathml(latex, display=True)
        rendered = render_answer(f"$${latex}$$").html
        assert elements(raw) == [
            element for element in elements(rendered) if element[0] in MATH_TAGS
        ], latex
