"""Measure retrieval quality on labelled questions: recall@k and MRR per search path.

Each line of the JSONL file is {"question": "...", "relevant": ["<source title,
file name or id>", ...]}. Run it against a group's knowledge (--group) or a
folder ingested into a temporary group that is deleted afterwards (--corpus).
"""

from __future__ import annotations

import json
import secrets
from io import StringIO
from pathlib import Path, PurePath

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from agents import catalog
from agents.knowledge.retrieval import (
    MODES,
    embedder_for,
    embedding_call,
    embedding_hold,
    embedding_prices,
    group_embedding_model,
    search_chunks,
    serving_model,
)
from agents.models import KnowledgeSource
from billing.metering import metered
from billing.services import Usage
from ontology import services as ontology_services
from ontology.models import Group
from ontology.scoping import group_scope


def _names(source: KnowledgeSource) -> set[str]:
    names = {str(source.pk), source.title.lower()}
    if source.filename:
        names |= {source.filename.lower(), PurePath(source.filename).stem.lower()}
    return names


class Command(BaseCommand):
    help = "Print recall@k and MRR of vector-only, keyword-only and hybrid retrieval."

    def add_arguments(self, parser):
        parser.add_argument("questions", help="A JSONL file of questions and relevant documents.")
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--group", help="Evaluate this group's knowledge (slug).")
        where.add_argument("--corpus", help="Ingest this folder into a temporary group first.")
        parser.add_argument("--k", type=int, default=5)
        parser.add_argument("--model", help="Embedding model (default: the group's).")
        parser.add_argument("--json", action="store_true", help="Also print the figures as JSON.")

    def handle(
        self, *args, questions, group=None, corpus=None, k=5, model=None, json=False, **options
    ):
        labelled = self._read(Path(questions))
        if model and catalog.get_embedding_model(model) is None:
            raise CommandError(f"Unknown embedding model {model!r}.")
        if corpus:
            target = ontology_services.group_create(
                name="Retrieval evaluation",
                slug=f"eval-{secrets.token_hex(4)}",
                actor=None,
                properties={"embeddingModel": model} if model else {},
            )
            try:
                call_command(
                    "ingest_knowledge",
                    corpus,
                    "--group",
                    target.slug,
                    stdout=StringIO(),
                    stderr=StringIO(),
                )
                report = self._evaluate(target, labelled, k, model)
            finally:
                ontology_services.group_delete(group=target, actor=None)
        else:
            target = Group.objects.filter(slug=group).first()
            if target is None:
                raise CommandError(f"No group with the slug {group!r}.")
            report = self._evaluate(target, labelled, k, model)
        self.stdout.write(f"{'path':<9} {'recall@' + str(k):>9} {'MRR':>6}  questions")
        for mode, figures in report.items():
            self.stdout.write(
                f"{mode:<9} {figures[f'recall@{k}']:>9.3f} {figures['mrr']:>6.3f}"
                f"  {figures['questions']}"
            )
        if json:
            self.stdout.write(_dumps(report))

    def _read(self, path: Path) -> list[tuple[str, set[str]]]:
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        labelled = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                question, relevant = item["question"], item["relevant"]
            except (ValueError, KeyError, TypeError) as error:
                raise CommandError(f"{path}:{number}: not a question line ({error}).") from None
            labelled.append((question, {str(r).lower() for r in relevant}))
        if not labelled:
            raise CommandError(f"{path} has no questions.")
        return labelled

    def _evaluate(self, group: Group, labelled, k: int, model: str | None) -> dict:
        with group_scope(group):
            sources = {s.pk: _names(s) for s in KnowledgeSource.objects.defer("raw")}
        wanted = model or group_embedding_model(group)
        serving = serving_model(group, wanted)
        if serving != wanted:
            raise CommandError(f"{wanted} is not ready for this group (serving: {serving}).")
        embedder = embedder_for(group=group, model=serving)
        questions = [question for question, _ in labelled]
        call = embedding_call(group=group, embedder=embedder)
        with metered(
            call,
            hold=embedding_hold(embedder, questions),
            prices=lambda: embedding_prices(embedder),
        ):
            embedded = embedder.embed(questions)
            call.usage = Usage(input_tokens=embedded.input_tokens)
        report = {}
        for mode in MODES:
            recall = reciprocal = 0.0
            for (question, relevant), vector in zip(labelled, embedded.vectors, strict=True):
                hits = search_chunks(
                    group=group, query=question, top_k=k, vector=vector, model=serving, mode=mode
                )
                ranked = list(dict.fromkeys(hit.source_id for hit in hits))
                found = [n for n, pk in enumerate(ranked, 1) if sources.get(pk, set()) & relevant]
                matched = {name for pk in ranked for name in sources.get(pk, set()) & relevant}
                recall += min(1.0, len(matched) / len(relevant))
                reciprocal += 1 / found[0] if found else 0.0
            count = len(labelled)
            report[mode] = {
                f"recall@{k}": round(recall / count, 4),
                "mrr": round(reciprocal / count, 4),
                "questions": count,
            }
        return report


def _dumps(report: dict) -> str:
    return json.dumps(report, sort_keys=True)
