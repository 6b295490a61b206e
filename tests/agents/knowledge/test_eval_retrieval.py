"""eval_retrieval: several labelled sets and configurations in one run, and the issue-16 bar.

Fusion must never be worse than its best single path on a labelled set; both sets
that ship in bench/ are held to that with the default settings.
"""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ontology.models import Group
from tests.agents.conftest import ingest_text

BENCH = Path(__file__).resolve().parents[3] / "bench"


def _run(*args) -> str:
    out = StringIO()
    call_command("eval_retrieval", *args, stdout=out)
    return out.getvalue()


def test_configurations_are_compared_in_one_run(tenant_a):
    before = Group.objects.count()
    output = _run(
        "--sample",
        str(BENCH / "retrieval_eval"),
        "--chunk-tokens",
        "40,200",
        "--headings",
        "on,off",
        "--fusion",
        "1:1:60",
        "--fusion",
        "1:0.25:1:any",
        "--json",
    )
    rows = json.loads(output.strip().splitlines()[-1])
    assert [(r["chunk_tokens"], r["headings"], r["fusion"]) for r in rows] == [
        (size, headings, fusion)
        for size in (40, 200)
        for headings in (True, False)
        for fusion in ("1:1:60", "1:0.25:1:any")
    ]
    for row in rows:
        assert row["set"] == "retrieval_eval"
        for mode in ("vector", "keyword", "hybrid"):
            assert 0 <= row[mode]["mrr"] <= row[mode]["recall@5"] <= 1
            assert row[mode]["questions"] == 24
    # The paths alone do not depend on the fusion; the bare chunks are ranked differently.
    assert rows[0]["vector"] == rows[1]["vector"] and rows[0]["keyword"] == rows[1]["keyword"]
    on, off = rows[4], rows[6]  # 200 tokens, with and without headings
    assert (on["vector"], on["keyword"]) != (off["vector"], off["keyword"])
    assert "best?" in output.splitlines()[0]
    assert Group.objects.count() == before  # every temporary group is gone


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fusion", "1:0.5"], "expected VECTOR_WEIGHT:KEYWORD_WEIGHT:RRF_K"),
        (["--fusion", "1:0.5:60:all"], "expected VECTOR_WEIGHT:KEYWORD_WEIGHT:RRF_K"),
        (["--fusion", "1:-1:60"], "expected VECTOR_WEIGHT:KEYWORD_WEIGHT:RRF_K"),
        (["--chunk-tokens", "8"], "at least 16 tokens"),
        (["--headings", "maybe"], "--headings"),
    ],
)
def test_bad_configurations_are_refused(tenant_a, args, message):
    with pytest.raises(CommandError, match=message):
        _run("--sample", str(BENCH / "retrieval_eval"), *args)


def test_a_groups_own_knowledge_is_measured_as_it_was_ingested(tenant_a, tmp_path):
    ingest_text(tenant_a.group, "Pets", "Dogs are welcome in the office on Fridays.")
    ingest_text(tenant_a.group, "Bikes", "Bicycles are parked in the basement garage.")
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": "Can my puppy come in?", "relevant": ["pets"]}))
    report = json.loads(
        _run(str(questions), "--group", tenant_a.group.slug, "--json").strip().splitlines()[-1]
    )
    assert report["vector"] == {"recall@5": 1.0, "mrr": 1.0, "questions": 1}
    assert report["hybrid"]["mrr"] == 1.0
    # Its chunks are the group's own: they are not re-chunked or stripped for a measurement.
    with pytest.raises(CommandError, match="need --corpus or --sample"):
        _run(str(questions), "--group", tenant_a.group.slug, "--chunk-tokens", "120")


def test_hybrid_is_never_worse_than_either_path_on_the_public_set(tenant_a):
    """The second labelled set: the Python Language Reference, paraphrased questions."""
    report = json.loads(
        _run("--sample", str(BENCH / "retrieval_eval_public"), "--json").strip().splitlines()[-1]
    )
    assert report["hybrid"]["questions"] >= 40
    for metric in ("recall@5", "mrr"):
        best_single = max(report["vector"][metric], report["keyword"][metric])
        assert report["hybrid"][metric] >= best_single, (metric, report)
    assert report["vector"]["recall@5"] > report["keyword"]["recall@5"]
