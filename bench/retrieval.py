"""Hybrid retrieval at scale: latency for one group and HNSW recall against exact search.

    python -m config.devservers exec -- .venv/bin/python bench/retrieval.py [--chunks 100000]

Builds a corpus of synthetic chunks (clustered 384-dimension vectors, text from
a made-up vocabulary) spread over many groups, one of them large (tenants are
never the same size), loads it with COPY, builds the per-model HNSW and GIN
indexes, then for the large group and for a typical small one measures:

* hybrid query latency (vector + full text + RRF, as the agents call it) p50/p95,
  and the same for each path alone;
* recall@10 of the HNSW path against exact search with the same group filter;
* optionally (--embed) the local MiniLM query embedding time, which a real
  question adds on top.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402

from agents.knowledge.retrieval import indexes, search_chunks  # noqa: E402
from agents.models import KnowledgeSource  # noqa: E402
from ontology.models import Group  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
DIMENSIONS = 384
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "gri", "fen", "bal"]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES, size=rng.integers(2, 5))))
    return sorted(words)


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def build(
    groups: int, chunks: int, big_share: float, rng: np.random.Generator
) -> tuple[list[Group], list, np.ndarray]:
    words = vocabulary(rng, 5000)
    centers = unit(rng.standard_normal((256, DIMENSIONS)).astype(np.float32))
    big = int(chunks * big_share)
    small = -(-(chunks - big) // (groups - 1))  # at least `chunks` in all
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(indexes.drop_sql(MODEL))
        cursor.execute("DROP INDEX IF EXISTS knowledge_search_gin")
    raw = connection.connection
    register_vector(raw)
    made = []
    started = time.perf_counter()
    for g in range(groups):
        group = Group.objects.create(name=f"Bench group {g}", slug=f"bench-{g}")
        size = big if g == 0 else small
        source = KnowledgeSource.objects.create(
            group=group,
            kind="text",
            title=f"Bench corpus {g}",
            content_hash=f"bench-{g}",
            status="ready",
            chunk_count=size,
        )
        made.append(group)
        with raw.cursor() as cursor:
            with cursor.copy(
                "COPY agents_knowledge (group_id, source_id, title, section, content, position, "
                "token_count, created_at) FROM STDIN"
            ) as copy:
                for n in range(size):
                    text = " ".join(rng.choice(words, size=30))
                    copy.write_row(
                        (group.pk, source.pk, source.title, f"Part {n // 20}", text, n, 30, now)
                    )
            cursor.execute(
                "SELECT id FROM agents_knowledge WHERE source_id = %s ORDER BY id", [source.pk]
            )
            ids = [row[0] for row in cursor.fetchall()]
            assigned = rng.integers(0, len(centers), size=len(ids))
            noise = rng.standard_normal((len(ids), DIMENSIONS)).astype(np.float32) * 0.06
            vectors = unit(centers[assigned] + noise)
            with cursor.copy(
                "COPY agents_knowledgeembedding (group_id, source_id, chunk_id, model, embedding) "
                "FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "int8", "int8", "varchar", "vector"])
                for chunk_id, vector in zip(ids, vectors, strict=True):
                    copy.write_row((group.pk, source.pk, chunk_id, MODEL, vector))
    raw.commit()
    print(
        f"loaded {big + small * (groups - 1)} chunks in {groups} groups "
        f"in {time.perf_counter() - started:.1f} s"
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(indexes.create_sql(MODEL))
        hnsw_seconds = time.perf_counter() - started
        cursor.execute(
            "CREATE INDEX knowledge_search_gin ON agents_knowledge USING gin (search_vector)"
        )
        cursor.execute("ANALYZE agents_knowledge")
        cursor.execute("ANALYZE agents_knowledgeembedding")
    print(
        f"HNSW index built in {hnsw_seconds:.1f} s; "
        f"GIN + ANALYZE in {time.perf_counter() - started - hnsw_seconds:.1f} s"
    )
    return [made[0], made[len(made) // 2]], words, centers


def timed(runs: list[tuple[str, np.ndarray]], group: Group, mode: str) -> list[float]:
    latencies = []
    for text, vector in runs:
        started = time.perf_counter()
        search_chunks(
            group=group, query=text, top_k=10, vector=vector.tolist(), model=MODEL, mode=mode
        )
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def measure(group: Group, runs: list, total: int) -> None:
    timed(runs[:30], group, "hybrid")  # warm the caches
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM agents_knowledgeembedding WHERE group_id = %s", [group.pk]
        )
        in_group = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', false)")
        order = f"{indexes.vector_expression(MODEL)} <=> %s::{indexes.query_cast(MODEL)}"
        cursor.execute(
            "EXPLAIN SELECT chunk_id FROM agents_knowledgeembedding "  # noqa: S608
            f"WHERE model = {indexes.model_literal(MODEL)} AND group_id = %s "
            f"ORDER BY {order} LIMIT 40",
            [group.pk, "[" + ",".join(map(str, runs[0][1].tolist())) + "]"],
        )
        plan = [row[0].strip().split("  (")[0] for row in cursor.fetchall()]
    scans = [line.removeprefix("->  ") for line in plan if "Scan" in line]
    print(f"\n{group.name}: {in_group} of {total} chunks; {len(runs)} queries, top-10")
    print(f"  planner's choice for the vector path: {' / '.join(scans)}")
    for mode in ("hybrid", "vector", "keyword"):
        latencies = timed(runs, group, mode)
        print(
            f"  {mode:<8} p50 {statistics.median(latencies):6.2f} ms   "
            f"p95 {percentile(latencies, 0.95):6.2f} ms"
        )
    with connection.cursor() as cursor:  # leave the planner no way around the HNSW index
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            cursor.execute(f"SET {setting} = off")
    # Vector path only: with sorts penalised the text path's plan would be distorted too.
    latencies = timed(runs, group, "vector")
    print(
        f"  vector   p50 {statistics.median(latencies):6.2f} ms   "
        f"p95 {percentile(latencies, 0.95):6.2f} ms   (HNSW index forced)"
    )
    recalls = []
    for text, vector in runs[:100]:
        common = {
            "group": group,
            "query": text,
            "top_k": 10,
            "vector": vector.tolist(),
            "model": MODEL,
            "mode": "vector",
        }
        approximate = {hit.knowledge_id for hit in search_chunks(**common)}
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_bitmapscan")
            cursor.execute("RESET enable_sort")
        exact = {hit.knowledge_id for hit in search_chunks(**common, exact=True)}
        with connection.cursor() as cursor:
            cursor.execute("SET enable_bitmapscan = off")
            cursor.execute("SET enable_sort = off")
        recalls.append(len(approximate & exact) / max(1, len(exact)))
    with connection.cursor() as cursor:
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            cursor.execute(f"RESET {setting}")
    print(
        f"  recall@10 of the HNSW path against exact search (same filter): "
        f"{statistics.mean(recalls):.3f} (min {min(recalls):.2f}, 100 queries)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=24)
    parser.add_argument(
        "--big-share", type=float, default=0.5, help="Share of all chunks in the one large group."
    )
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--embed", action="store_true", help="Also time local query embedding.")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    call_command("migrate", verbosity=0)
    groups, words, centers = build(args.groups, args.chunks, args.big_share, rng)

    def question() -> tuple[str, np.ndarray]:
        noise = rng.standard_normal(DIMENSIONS).astype(np.float32) * 0.06
        vector = unit((centers[rng.integers(0, len(centers))] + noise)[None, :])[0]
        return " ".join(rng.choice(words, size=3)), vector

    runs = [question() for _ in range(args.queries)]
    for group in groups:
        measure(group, runs, args.chunks)

    if args.embed:
        from agents.knowledge.retrieval import embedder_for

        embedder = embedder_for(group=groups[0], model=MODEL)
        embedder.embed(["warm up"])
        latencies = []
        for n in range(50):
            started = time.perf_counter()
            embedder.embed([f"How many days do I have to return item {n}?"])
            latencies.append((time.perf_counter() - started) * 1000)
        print(
            f"  local MiniLM query embedding p50 {statistics.median(latencies):.1f} ms   "
            f"p95 {percentile(latencies, 0.95):.1f} ms"
        )


if __name__ == "__main__":
    main()
