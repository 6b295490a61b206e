"""Measure retrieval quality on labelled questions: recall@k and MRR per search path.

Each line of the JSONL file is {"question": "...", "relevant": ["<source title,
file name or id>", ...]}. Run it against a group's knowledge (--group), a folder
ingested into a temporary group that is deleted afterwards (--corpus), or one
or more labelled samples laid out as bench/retrieval_eval/ is (--sample DIR:
DIR/questions.jsonl and DIR/docs/).

With a corpus or samples it can also compare configurations in one run, which is
how the defaults were chosen (docs/benchmarks.md, "Retrieval quality"):
`--chunk-tokens 120,200,300` ingests once per chunk size, `--headings on,off`
also measures chunks embedded and indexed without their title and heading path,
and each `--fusion VECTOR:KEYWORD:K` weighs the hybrid ranking another way.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from io import StringIO
from pathlib import Path, PurePath

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.test import override_settings

from agents import catalog
from agents.knowledge.retrieval import (
    embedder_for,
    embedding_call,
    embedding_hold,
    embedding_prices,
    group_embedding_model,
    search_chunks,
    serving_model,
)
from agents.knowledge.retrieval.embedders import Embedder
from agents.knowledge.retrieval.search import Fusion
from agents.models import Knowledge, KnowledgeEmbedding, KnowledgeSource
from billing.metering import metered
from billing.services import Usage
from ontology import services as ontology_services
from ontology.models import Group
from ontology.scoping import group_scope

Labelled = list[tuple[str, set[str]]]


@dataclass(frozen=True)
class Sample:
    name: str
    questions: Labelled
    docs: Path | None  # None: the group's own knowledge


def _names(source: KnowledgeSource) -> set[str]:
    names = {str(source.pk), source.title.lower()}
    if source.filename:
        names |= {source.filename.lower(), PurePath(source.filename).stem.lower()}
    return names


def parse_fusion(text: str) -> Fusion:
    """A --fusion value: weights and k as "VECTOR:KEYWORD:K", then ":any" when the keyword
    path should match any of the question's words beside the vector path (else all)."""
    parts = text.split(":")
    try:
        if len(parts) not in (3, 4) or parts[3:] not in ([], ["any"]):
            raise ValueError
        return Fusion(
            vector_weight=float(parts[0]),
            keyword_weight=float(parts[1]),
            rrf_k=int(parts[2]),
            keyword_any=parts[3:] == ["any"],
        )
    except ValueError:
        raise CommandError(
            f"--fusion {text!r}: expected VECTOR_WEIGHT:KEYWORD_WEIGHT:RRF_K[:any], e.g. 1:0.5:60."
        ) from None


def fusion_name(fusion: Fusion) -> str:
    return f"{fusion.vector_weight:g}:{fusion.keyword_weight:g}:{fusion.rrf_k}" + (
        ":any" if fusion.keyword_any else ""
    )


def _int_list(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--chunk-tokens {text!r}: expected sizes such as 120,200.") from None
    if not sizes or min(sizes) < 16:
        raise CommandError("--chunk-tokens: chunks need at least 16 tokens.")
    return sizes


def _headings(text: str) -> list[bool]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values or set(values) - {"on", "off"}:
        raise CommandError("--headings: on, off or on,off.")
    # "off" rewrites the chunks, so it is measured after "on".
    return sorted({value == "on" for value in values}, reverse=True)


class Command(BaseCommand):
    help = "Print recall@k and MRR of vector-only, keyword-only and hybrid retrieval."

    def add_arguments(self, parser):
        parser.add_argument(
            "questions", nargs="?", help="A JSONL file of questions and relevant documents."
        )
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--group", help="Evaluate this group's knowledge (slug).")
        where.add_argument("--corpus", help="Ingest this folder into a temporary group first.")
        where.add_argument(
            "--sample",
            action="append",
            help="A folder with questions.jsonl and docs/ (repeat for several).",
        )
        parser.add_argument("--k", type=int, default=5)
        parser.add_argument("--model", help="Embedding model (default: the group's).")
        parser.add_argument(
            "--chunk-tokens",
            help="Comma-separated chunk sizes to compare (default: PARLEY_CHUNK_TOKENS); "
            "the overlap keeps PARLEY_CHUNK_OVERLAP's share of the size.",
        )
        parser.add_argument(
            "--headings",
            default="on",
            help="on (title and heading path embedded and indexed with each chunk, as "
            "ingestion does), off (the chunk's text alone), or on,off.",
        )
        parser.add_argument(
            "--fusion",
            action="append",
            help="VECTOR_WEIGHT:KEYWORD_WEIGHT:RRF_K[:any] for the hybrid path (repeat to "
            "compare; default: the PARLEY_RETRIEVAL_* settings).",
        )
        parser.add_argument("--json", action="store_true", help="Also print the figures as JSON.")

    def handle(self, *args, questions=None, group=None, corpus=None, sample=None, **options):
        k, model = options["k"], options["model"]
        if model and catalog.get_embedding_model(model) is None:
            raise CommandError(f"Unknown embedding model {model!r}.")
        sizes = _int_list(options["chunk_tokens"]) if options["chunk_tokens"] else [None]
        headings = _headings(options["headings"])
        fusions = [parse_fusion(text) for text in options["fusion"] or []] or [
            Fusion.from_settings()
        ]
        samples = self._samples(questions, group, corpus, sample)
        if group and (sizes != [None] or headings != [True]):
            raise CommandError("--chunk-tokens and --headings need --corpus or --sample.")
        rows = []
        for one in samples:
            if one.docs is None:
                target = Group.objects.filter(slug=group).first()
                if target is None:
                    raise CommandError(f"No group with the slug {group!r}.")
                rows += self._measure(one, target, None, headings, fusions, k, model)
                continue
            for size in sizes:
                target = self._ingest(one.docs, size, model)
                try:
                    rows += self._measure(one, target, size, headings, fusions, k, model)
                finally:
                    ontology_services.group_delete(group=target, actor=None)
        if len(rows) == 1:
            self._print_one(rows[0], k, options["json"])
        else:
            self._print_table(rows, k, options["json"])

    def _samples(self, questions, group, corpus, sample) -> list[Sample]:
        if sample:
            if questions:
                raise CommandError("--sample folders hold their own questions.jsonl.")
            return [
                Sample(
                    Path(folder).name,
                    self._read(Path(folder) / "questions.jsonl"),
                    Path(folder) / "docs",
                )
                for folder in sample
            ]
        if not questions:
            raise CommandError("Name the questions file (or use --sample).")
        return [Sample(Path(questions).stem, self._read(Path(questions)), corpus and Path(corpus))]

    def _read(self, path: Path) -> Labelled:
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

    def _ingest(self, docs: Path, size: int | None, model: str | None) -> Group:
        """A temporary group holding `docs`, chunked at `size` tokens (default: the settings')."""
        target = ontology_services.group_create(
            name="Retrieval evaluation",
            slug=f"eval-{secrets.token_hex(4)}",
            actor=None,
            properties={"embeddingModel": model} if model else {},
        )
        chunking = {}
        if size is not None:
            share = settings.PARLEY_CHUNK_OVERLAP / settings.PARLEY_CHUNK_TOKENS
            chunking = {"PARLEY_CHUNK_TOKENS": size, "PARLEY_CHUNK_OVERLAP": round(size * share)}
        try:
            with override_settings(**chunking):
                call_command(
                    "ingest_knowledge",
                    str(docs),
                    "--group",
                    target.slug,
                    stdout=StringIO(),
                    stderr=StringIO(),
                )
        except BaseException:
            ontology_services.group_delete(group=target, actor=None)
            raise
        return target

    def _measure(
        self,
        sample: Sample,
        group: Group,
        size: int | None,
        headings: list[bool],
        fusions: list[Fusion],
        k: int,
        model: str | None,
    ) -> list[dict]:
        with group_scope(group):
            sources = {s.pk: _names(s) for s in KnowledgeSource.objects.defer("raw")}
        wanted = model or group_embedding_model(group)
        serving = serving_model(group, wanted)
        if serving != wanted:
            raise CommandError(f"{wanted} is not ready for this group (serving: {serving}).")
        embedder = embedder_for(group=group, model=serving)
        vectors = _embed(group, embedder, [question for question, _ in sample.questions])
        rows = []
        for with_headings in headings:
            if not with_headings:
                _drop_headings(group, embedder)

            def score(mode: str, fusion: Fusion | None = None) -> dict:
                return _score(group, sample.questions, vectors, sources, serving, k, mode, fusion)

            single = {"vector": score("vector"), "keyword": score("keyword")}
            for fusion in fusions:
                rows.append(
                    {
                        "set": sample.name,
                        "chunk_tokens": size or settings.PARLEY_CHUNK_TOKENS,
                        "headings": with_headings,
                        "fusion": fusion_name(fusion),
                        "hybrid": score("hybrid", fusion),
                        **single,
                    }
                )
        return rows

    def _print_one(self, row: dict, k: int, as_json: bool) -> None:
        report = {mode: row[mode] for mode in ("hybrid", "vector", "keyword")}
        self.stdout.write(f"{'path':<9} {'recall@' + str(k):>9} {'MRR':>6}  questions")
        for mode, figures in report.items():
            self.stdout.write(
                f"{mode:<9} {figures[f'recall@{k}']:>9.3f} {figures['mrr']:>6.3f}"
                f"  {figures['questions']}"
            )
        if as_json:
            self.stdout.write(_dumps(report))

    def _print_table(self, rows: list[dict], k: int, as_json: bool) -> None:
        recall = f"recall@{k}"
        self.stdout.write(
            f"{'set':<22} {'chunk':>5} {'head':>4} {'fusion':<14}"
            + "".join(f" {mode + ' ' + recall:>18} {'MRR':>6}" for mode in ("vector", "keyword"))
            + f" {'hybrid ' + recall:>18} {'MRR':>6}  best?"
        )
        for row in rows:
            best = all(
                row["hybrid"][metric] >= max(row["vector"][metric], row["keyword"][metric])
                for metric in (recall, "mrr")
            )
            self.stdout.write(
                f"{row['set']:<22} {row['chunk_tokens']:>5} {'on' if row['headings'] else 'off':>4}"
                f" {row['fusion']:<14}"
                + "".join(
                    f" {row[mode][recall]:>18.3f} {row[mode]['mrr']:>6.3f}"
                    for mode in ("vector", "keyword", "hybrid")
                )
                + ("  yes" if best else "  no")
            )
        if as_json:
            self.stdout.write(json.dumps(rows, sort_keys=True))


def _embed(group: Group, embedder: Embedder, texts: list[str]) -> list[list[float]]:
    """Embed texts as one ledger call (local models cost nothing, hosted ones are billed)."""
    call = embedding_call(group=group, embedder=embedder)
    with metered(
        call, hold=embedding_hold(embedder, texts), prices=lambda: embedding_prices(embedder)
    ):
        embedded = embedder.embed(texts)
        call.usage = Usage(input_tokens=embedded.input_tokens)
    return embedded.vectors


def _drop_headings(group: Group, embedder: Embedder) -> None:
    """Make the temporary group's chunks carry their text alone, in the index and the vectors.

    Emptying title and section recomputes the full-text column (a generated one);
    the vectors are replaced by those of the bare text. Only for the throwaway group.
    """
    with group_scope(group):
        chunks = list(Knowledge.objects.order_by("id").only("id", "content"))
        Knowledge.objects.update(title="", section="")
        embeddings = {
            e.chunk_id: e for e in KnowledgeEmbedding.objects.filter(model=embedder.model)
        }
        size = max(1, settings.PARLEY_EMBEDDING_BATCH_SIZE)
        for start in range(0, len(chunks), size):
            batch = chunks[start : start + size]
            vectors = _embed(group, embedder, [c.content for c in batch])
            for chunk, vector in zip(batch, vectors, strict=True):
                embeddings[chunk.id].embedding = vector
        KnowledgeEmbedding.objects.bulk_update(embeddings.values(), ["embedding"], batch_size=500)


def _score(group, labelled, vectors, sources, model, k, mode, fusion) -> dict:
    recall = reciprocal = 0.0
    for (question, relevant), vector in zip(labelled, vectors, strict=True):
        hits = search_chunks(
            group=group,
            query=question,
            top_k=k,
            vector=vector,
            model=model,
            mode=mode,
            fusion=fusion,
        )
        ranked = list(dict.fromkeys(hit.source_id for hit in hits))
        found = [n for n, pk in enumerate(ranked, 1) if sources.get(pk, set()) & relevant]
        matched = {name for pk in ranked for name in sources.get(pk, set()) & relevant}
        recall += min(1.0, len(matched) / len(relevant))
        reciprocal += 1 / found[0] if found else 0.0
    count = len(labelled)
    return {
        f"recall@{k}": round(recall / count, 4),
        "mrr": round(reciprocal / count, 4),
        "questions": count,
    }


def _dumps(report: dict) -> str:
    return json.dumps(report, sort_keys=True)
