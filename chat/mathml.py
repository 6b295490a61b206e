"""LaTeX in answers (`$…$`, `$$…$$`) as MathML, made on the server so the page needs no math
library: browsers lay MathML out themselves.

latex2mathml does the conversion. Its own `convert()` un-escapes the whole serialized tree to
turn its entity strings (`&#x003B1;`) into characters, which would also turn `\\text{<b>}` into
real markup; so the tree is serialized here instead, with each text and attribute un-escaped
first and then escaped once by ElementTree. The result still goes through rendering.py's nh3
pass, which keeps only the MathML below. LaTeX the converter cannot read is shown as its source
in `<code>`, so one bad formula never costs the rest of the answer.
"""

from __future__ import annotations

import html
from xml.etree.ElementTree import Element, tostring

from latex2mathml.converter import convert_to_element

# Longer formulas are shown as source: conversion is recursive and answers are untrusted.
MAX_LATEX_CHARS = 4000

# Exactly what latex2mathml emits, less `href`, `class`, `style` (from \href, \class, \style)
# and `border-color`: links, page classes and CSS are not for model output.
MATH_TAGS = {
    "math",
    "menclose",
    "mfrac",
    "mi",
    "mn",
    "mo",
    "mover",
    "mpadded",
    "mphantom",
    "mroot",
    "mrow",
    "mspace",
    "msqrt",
    "mstyle",
    "msub",
    "msubsup",
    "msup",
    "mtable",
    "mtd",
    "mtext",
    "mtr",
    "munder",
    "munderover",
}
MATH_ATTRIBUTES = {
    "math": {"display"},
    "menclose": {"notation"},
    "mfrac": {"linethickness"},
    "mi": {"mathvariant"},
    "mn": {"mathvariant"},
    "mo": {
        "accent",
        "fence",
        "form",
        "largeop",
        "lspace",
        "mathvariant",
        "maxsize",
        "minsize",
        "movablelimits",
        "rspace",
        "separator",
        "stretchy",
    },
    "mover": {"accent"},
    "mpadded": {"depth", "height", "lspace", "mathbackground", "voffset", "width"},
    "mrow": {"movablelimits"},
    "mspace": {"depth", "height", "linebreak", "mathbackground", "width"},
    "mstyle": {"displaystyle", "mathcolor", "mathsize", "scriptlevel"},
    "mtable": {"columnlines", "columnspacing", "displaystyle", "rowlines", "rowspacing"},
    "mtd": {"columnalign"},
    "mtext": {"mathvariant"},
}


def latex_to_mathml(latex: str, *, display: bool) -> str:
    """`<math>` for the formula, or its source as `<code class="math-source">` if unreadable."""
    source = latex.strip()
    if not source or len(source) > MAX_LATEX_CHARS:
        return _as_source(latex, display=display)
    try:
        tree = convert_to_element(source, display="block" if display else "inline")
    except Exception:  # the converter raises many kinds (and RecursionError) on bad input
        return _as_source(latex, display=display)
    _unescape_entities(tree)
    tree.attrib.pop("xmlns", None)  # implied by <math> in HTML
    tree.set("display", "block" if display else "inline")
    return tostring(tree, encoding="unicode")


def _unescape_entities(element: Element) -> None:
    """latex2mathml keeps characters as entity text (`&#x0002B;`): make them characters."""
    if element.text:
        element.text = html.unescape(element.text)
    if element.tail:
        element.tail = html.unescape(element.tail)
    for name, value in element.attrib.items():
        element.set(name, html.unescape(value))
    for child in element:
        _unescape_entities(child)


def _as_source(latex: str, *, display: bool) -> str:
    fence = "$$" if display else "$"
    return f'<code class="math-source">{html.escape(fence + latex + fence)}</code>'
