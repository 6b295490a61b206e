"""Write docs/ from the Python Language Reference topics shipped with CPython.

`pydoc_data.topics` (the text `help("with")` shows) is part of every CPython
install, so the collection is available offline. Topics that repeat another
one (a section that is also a whole topic, or a topic made of other topics)
are left out, so each question has one right document. The files are
committed; rerun this only to rebuild them (the text differs a little between
Python versions): `python bench/retrieval_eval_public/build_docs.py`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from pydoc_data.topics import topics

# Supersets of other topics (compound, specialnames, naming) and sections repeated
# whole inside another topic (else = if, augassign in assignment, ...).
LEFT_OUT = {
    "compound",
    "specialnames",
    "naming",
    "else",
    "augassign",
    "dynamic-features",
    "exceptions",
    "id-classes",
    "in",
    "typesseq-mutable",
}
LEVELS = {"*": "#", "=": "##", "-": "###", "~": "####"}


def markdown(text: str) -> str:
    """reST-style underlined headings become Markdown headings; nothing else changes."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        under = lines[i + 1] if i + 1 < len(lines) else ""
        if (
            line.strip()
            and not line.startswith(" ")
            and len(under) == len(line)
            and len(set(under)) == 1
            and under[0] in LEVELS
        ):
            out.append(f"{LEVELS[under[0]]} {line.strip()}")
            i += 2
            continue
        out.append(" " + line if line.startswith("#") else line)
        i += 1
    return "\n".join(out).strip() + "\n"


def main() -> None:
    folder = Path(__file__).resolve().parent / "docs"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.md"):
        old.unlink()
    kept = sorted(name for name in topics if name not in LEFT_OUT)
    for name in kept:
        (folder / f"{re.sub(r'[^a-z0-9-]', '-', name)}.md").write_text(markdown(topics[name]))
    print(f"{len(kept)} documents from Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
