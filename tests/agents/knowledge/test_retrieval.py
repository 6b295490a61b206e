"""Retrieval on real pgvector: chunking, local and hosted embeddings, hybrid search, isolation."""

import itertools
from decimal import Decimal

import pytest
from django.db import connection

from agents import catalog, knowledge
from agents.knowledge.ingestion.extract import extract_text
from agents.knowledge.retrieval import (
    chunk_text,
    embedder_for,
    embedding_text,
    retrieve,
    search_chunks,
    serving_model,
)
from agents.knowledge.retrieval.indexes import index_name, query_cast, vector_expression
from agents.knowledge.retrieval.search import Fusion
from agents.models import EmbeddingIndex, Knowledge, KnowledgeEmbedding
from billing.models import AICall, BudgetReservation
from ontology.models import Event
from ontology.scoping import group_scope
from tests.agents.conftest import ingest_text
from tests.conftest import set_plan

HANDBOOK = """# Employee handbook

## Travel

### Flights
Economy class is the default. Flights longer than six hours may be booked in premium economy.

### Hotels
Book hotels through the travel portal; the nightly cap is 180 euros in most cities.

## Equipment
Every new starter receives a laptop, a headset and a monitor on their first day.
"""

PETS = "Dogs are welcome in the office on Fridays if they are calm and vaccinated."
BIKES = "Bicycles are parked in the basement garage; the door code changes every month."


def test_chunks_keep_their_heading_path_and_overlap():
    chunks = chunk_text(HANDBOOK, max_tokens=200, overlap=20)
    assert [c.section for c in chunks] == [
        "Employee handbook > Travel > Flights",
        "Employee handbook > Travel > Hotels",
        "Employee handbook > Equipment",
    ]
    long = " ".join(f"Sentence number {i} is here." for i in range(60))
    pieces = chunk_text(f"# Long\n{long}", max_tokens=40, overlap=10)
    assert len(pieces) > 5 and all(p.token_count <= 40 for p in pieces)
    assert all(p.section == "Long" for p in pieces)
    for before, after in itertools.pairwise(pieces):
        assert before.content[-15:] in after.content  # the overlap carries context over


def test_html_headings_become_sections_and_scripts_are_dropped():
    html = (
        b"<html><head><title>Guide</title><script>var x=1;</script></head><body>"
        b"<h1>Guide</h1><h2>Parking</h2><p>Use bay C.</p><h2>Lunch</h2><p>Noon.</p>"
        b"</body></html>"
    )
    text = extract_text(html, filename="guide.html")
    assert [c.section for c in chunk_text(text, max_tokens=50, overlap=5)] == [
        "Guide > Parking",
        "Guide > Lunch",
    ]
    assert "var x" not in text


def test_ingested_text_is_found_by_meaning_with_its_source(tenant_a):
    handbook = ingest_text(tenant_a.group, "Handbook", HANDBOOK)
    ingest_text(tenant_a.group, "Pets", PETS)
    ingest_text(tenant_a.group, "Bikes", BIKES)

    assert (handbook.status, handbook.chunk_count) == ("ready", 3)
    with group_scope(tenant_a.group):
        vectors = KnowledgeEmbedding.objects.filter(source=handbook)
        assert vectors.count() == 3
        assert {v.model for v in vectors} == {"all-MiniLM-L6-v2"}
        assert len(vectors[0].embedding) == 384
        assert EmbeddingIndex.objects.get().status == "ready"

    # No word in common with the answer: only the vector path can find it.
    hits = retrieve(group=tenant_a.group, query="May I bring my puppy to work?", top_k=3)
    assert hits[0].title == "Pets" and hits[0].vector_rank == 1
    assert hits[0].keyword_rank is None and hits[0].score > 0
    hits = retrieve(group=tenant_a.group, query="What can I spend on accommodation?", top_k=3)
    assert hits[0].citation_title == "Handbook > Employee handbook > Travel > Hotels"
    assert hits[0].source_id == handbook.pk
    with group_scope(tenant_a.group):
        chunk = Knowledge.objects.get(pk=hits[0].knowledge_id)
        assert "180 euros" in chunk.content
        ledger = AICall.objects.filter(purpose="embedding")
        assert ledger.count() == 3 + 2  # one per ingested batch, one per question
        assert {(r.provider, r.cost) for r in ledger} == {("local", Decimal(0))}
        assert all(r.input_tokens > 0 for r in ledger)


def test_keyword_search_needs_no_embeddings_and_honours_phrases(tenant_a):
    ingest_text(tenant_a.group, "Bikes", BIKES)
    ingest_text(tenant_a.group, "Pets", PETS)
    hits = search_chunks(group=tenant_a.group, query='"door code"', top_k=5, mode="keyword")
    assert [h.title for h in hits] == ["Bikes"]
    hits = search_chunks(group=tenant_a.group, query="office garage", top_k=5, mode="keyword")
    assert {h.title for h in hits} == {"Bikes", "Pets"}  # any word matches
    hits = search_chunks(group=tenant_a.group, query="office -garage", top_k=5, mode="keyword")
    assert [h.title for h in hits] == ["Pets"]  # but never a chunk with an excluded word
    hits = search_chunks(group=tenant_a.group, query="garage -office", top_k=5, mode="keyword")
    assert [h.title for h in hits] == ["Bikes"]
    # Bikes has "door" but also the excluded "garage": left out, whatever else it matches.
    hits = search_chunks(group=tenant_a.group, query="door dogs -garage", top_k=5, mode="keyword")
    assert [h.title for h in hits] == ["Pets"]


# Says "bring" and "work" three times over, and nothing about animals.
ERRANDS = "Bring your badge to work; bring your own mug to work, and bring lunch to work too."


def test_weighted_fusion_keeps_the_vectors_right_answer_over_a_keyword_match(tenant_a):
    """The failure behind issue 16: the words of a paraphrased question match a wrong
    chunk, and plain RRF lets that keyword rank outvote the vector path's right answer."""
    ingest_text(tenant_a.group, "Pets", PETS)
    ingest_text(tenant_a.group, "Errands", ERRANDS)
    question = "May I bring my puppy to work?"
    model = "all-MiniLM-L6-v2"
    (vector,) = embedder_for(group=tenant_a.group, model=model).embed([question]).vectors
    common = {"group": tenant_a.group, "query": question, "top_k": 2, "vector": vector}

    def titles(mode, fusion=None):
        return [h.title for h in search_chunks(**common, model=model, mode=mode, fusion=fusion)]

    assert titles("vector") == ["Pets", "Errands"]
    assert titles("keyword") == ["Errands"]  # the puppy chunk has none of the words
    plain_rrf = Fusion(vector_weight=1, keyword_weight=1, rrf_k=60, keyword_any=True)
    assert titles("hybrid", plain_rrf) == ["Errands", "Pets"]
    # The defaults: the keyword path reorders below the vector's first choice, never over it.
    hits = search_chunks(**common, model=model)
    assert [h.title for h in hits] == ["Pets", "Errands"]
    assert (hits[1].vector_rank, hits[1].keyword_rank) == (2, 1)  # it did take part


def test_a_path_searched_alone_keeps_its_order_whatever_the_weights(tenant_a):
    ingest_text(tenant_a.group, "Bikes", BIKES)
    ingest_text(tenant_a.group, "Pets", PETS)
    silent = Fusion(vector_weight=0, keyword_weight=0, rrf_k=1)
    hits = search_chunks(
        group=tenant_a.group, query="garage door code", top_k=5, mode="keyword", fusion=silent
    )
    assert [h.title for h in hits] == ["Bikes"] and hits[0].score > 0
    with pytest.raises(ValueError):
        Fusion(vector_weight=1, keyword_weight=-1, rrf_k=60)


def test_a_chunk_is_indexed_and_embedded_with_its_title_and_heading_path(tenant_a):
    ingest_text(tenant_a.group, "Handbook", HANDBOOK)
    # "Equipment" is only a heading and "handbook" only a title: the full text index has both.
    hits = search_chunks(group=tenant_a.group, query="equipment", top_k=5, mode="keyword")
    assert [h.section for h in hits] == ["Employee handbook > Equipment"]
    hits = search_chunks(group=tenant_a.group, query="handbook", top_k=5, mode="keyword")
    assert len(hits) == 3
    with group_scope(tenant_a.group):
        stored = KnowledgeEmbedding.objects.get(chunk__section="Employee handbook > Equipment")
        chunk = stored.chunk
    text = embedding_text(title=chunk.title, section=chunk.section, content=chunk.content)
    assert text.startswith("Handbook > Employee handbook > Equipment\n\n")
    embedder = embedder_for(group=tenant_a.group, model=stored.model)
    with_path, bare = embedder.embed([text, chunk.content]).vectors
    assert list(stored.embedding) == pytest.approx(with_path, abs=1e-5)
    assert list(stored.embedding) != pytest.approx(bare, abs=1e-3)


def test_a_tenant_never_retrieves_another_tenants_chunks_even_nearer_ones(tenant_a, tenant_b):
    ingest_text(tenant_a.group, "Alpha pets", PETS)
    question = "Are dogs welcome in the office on Fridays?"
    # Bravo holds the question itself, word for word, and near-duplicates: nearer on both paths.
    for n in range(5):
        ingest_text(tenant_b.group, f"Bravo copy {n}", f"{question} {'Yes. ' * n}Dogs on Fridays.")

    for mode in ("hybrid", "vector", "keyword"):
        hits = retrieve(group=tenant_a.group, query=question, top_k=10, mode=mode)
        assert [h.title for h in hits] == ["Alpha pets"], mode
    bravo = retrieve(group=tenant_b.group, query=question, top_k=10)
    assert len(bravo) == 5 and all(h.title.startswith("Bravo") for h in bravo)


def test_a_selected_source_filter_never_starves_the_results(tenant_a, settings):
    settings.PARLEY_RETRIEVAL_CANDIDATES = 2
    settings.PARLEY_RETRIEVAL_EF_SEARCH = 2
    chosen = ingest_text(tenant_a.group, "Bikes", BIKES)
    for n in range(12):
        ingest_text(tenant_a.group, f"Pets {n}", f"{PETS} Rule {n}.")
    with connection.cursor() as cursor:  # make the planner take the HNSW index
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_bitmapscan = off")
    try:
        hits = retrieve(
            group=tenant_a.group, query="dogs", top_k=2, mode="vector", source_ids=[chosen.pk]
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_seqscan")
            cursor.execute("RESET enable_bitmapscan")
    assert [h.title for h in hits] == ["Bikes"]


def test_vector_queries_use_the_models_own_hnsw_index(tenant_a):
    model = "all-MiniLM-L6-v2"
    vector = "[" + ",".join(["0.05"] * 384) + "]"
    with connection.cursor() as cursor:
        # Off, so the plan does not hang on the statistics earlier tests' ingestion left
        # (test_eval_retrieval ingests 69 documents): the question is whether the index fits.
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_bitmapscan = off")
        order = f"{vector_expression(model)} <=> %s::{query_cast(model)}"
        where = "WHERE model = 'all-MiniLM-L6-v2' AND group_id = %s"
        sql = "EXPLAIN SELECT id FROM agents_knowledgeembedding " + where  # noqa: S608
        cursor.execute(sql + f" ORDER BY {order} LIMIT 5", [tenant_a.group.pk, vector])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
        cursor.execute("RESET enable_bitmapscan")
    assert index_name(model) in plan, plan
    for info in catalog.embedding_models():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_indexes WHERE indexname = %s", [index_name(info.model)]
            )
            assert cursor.fetchone(), f"no HNSW index for {info.model}"


@pytest.fixture
def hosted(sim, settings, tenant_a):
    """OpenAI's embeddings API, served by the simulator, with a platform key."""
    settings.PARLEY_PROVIDER_BASE_URLS = {
        **settings.PARLEY_PROVIDER_BASE_URLS,
        "openai": sim.openai_base_url,
    }
    settings.PARLEY_PROVIDER_API_KEYS = {**settings.PARLEY_PROVIDER_API_KEYS, "openai": "sk-test"}
    return sim


def test_hosted_embeddings_are_batched_stored_at_their_dimension_and_billed(
    hosted, tenant_a, settings
):
    settings.PARLEY_EMBEDDING_BATCH_SIZE = 2
    knowledge.embedding_model_set(
        group=tenant_a.group, model="text-embedding-3-small", actor=tenant_a.owner
    )
    source = ingest_text(tenant_a.group, "Handbook", HANDBOOK)

    assert source.status == "ready"
    requests = [r for r in hosted.request_log if r["wire"] == "embeddings"]
    assert [len(r["body"]["input"]) for r in requests] == [2, 1]
    assert requests[0]["body"]["model"] == "text-embedding-3-small"
    with group_scope(tenant_a.group):
        vectors = KnowledgeEmbedding.objects.filter(model="text-embedding-3-small")
        assert vectors.count() == 3 and len(vectors[0].embedding) == 1536
        rows = list(AICall.objects.filter(purpose="embedding"))
    assert len(rows) == 2
    for row in rows:
        assert row.provider == "openai" and row.input_tokens > 0
        assert row.cost == (row.input_tokens * Decimal("0.02") / Decimal(10**6)).quantize(
            Decimal("0.00000001")
        )
    hits = retrieve(group=tenant_a.group, query="hotels travel portal", top_k=1)
    assert hits[0].section.endswith("Hotels")


def test_no_embedding_call_is_made_over_the_budget_and_the_source_says_why(hosted, tenant_a):
    """Embedding calls are paid calls: each holds its cost against the month's budget first.
    Over the budget none is made; the source fails with the reason, and a retry once the
    budget allows it embeds, its holds settled."""
    set_plan(tenant_a.group.plan, monthly_budget=Decimal("0"))
    knowledge.embedding_model_set(
        group=tenant_a.group, model="text-embedding-3-small", actor=tenant_a.owner
    )
    refused = ingest_text(tenant_a.group, "Handbook", HANDBOOK)

    assert refused.status == "failed" and "budget is used up" in refused.error
    assert [r for r in hosted.request_log if r["wire"] == "embeddings"] == []
    with group_scope(tenant_a.group):
        assert not AICall.objects.filter(purpose="embedding").exists()
        assert not Knowledge.objects.exists()  # nothing half-imported is searched
        (refusal,) = Event.objects.filter(type="quota.exceeded")
        assert refusal.metadata["purpose"] == "embedding"

    set_plan(tenant_a.group.plan, monthly_budget=Decimal("10"))
    retried = knowledge.source_retry(source=refused, actor=None)
    assert knowledge.source_process(group=tenant_a.group, source_id=retried.pk).status == "ready"
    with group_scope(tenant_a.group):
        assert AICall.objects.filter(purpose="embedding", status="ok").count() == 1
        assert not BudgetReservation.objects.exists()


def test_over_the_budget_a_search_goes_on_by_keywords_and_calls_no_provider(hosted, tenant_a):
    knowledge.embedding_model_set(
        group=tenant_a.group, model="text-embedding-3-small", actor=tenant_a.owner
    )
    ingest_text(tenant_a.group, "Handbook", HANDBOOK)
    hosted.clear()
    retrieve(group=tenant_a.group, query="hotels travel portal", top_k=1)
    assert len([r for r in hosted.request_log if r["wire"] == "embeddings"]) == 1
    with group_scope(tenant_a.group):
        assert not BudgetReservation.objects.exists()  # the query's hold, settled

    set_plan(tenant_a.group.plan, monthly_budget=Decimal("0"))
    hosted.clear()
    hits = retrieve(group=tenant_a.group, query="travel portal", top_k=1)
    assert hits[0].section.endswith("Hotels")  # the keyword path still answers
    assert [r for r in hosted.request_log if r["wire"] == "embeddings"] == []


def test_a_new_model_is_built_in_the_background_while_the_old_one_serves(hosted, tenant_a):
    ingest_text(tenant_a.group, "Pets", PETS)
    ingest_text(tenant_a.group, "Bikes", BIKES)
    assert serving_model(tenant_a.group, "all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"

    knowledge.embedding_model_set(
        group=tenant_a.group, model="text-embedding-3-small", actor=tenant_a.owner
    )
    # Not built yet: the old vectors answer, by meaning.
    assert serving_model(tenant_a.group, "text-embedding-3-small") == "all-MiniLM-L6-v2"
    hits = retrieve(group=tenant_a.group, query="May I bring my puppy?", top_k=1, mode="vector")
    assert hits[0].title == "Pets"

    assert knowledge.index_build(group=tenant_a.group, model="text-embedding-3-small") == "ready"
    assert serving_model(tenant_a.group, "text-embedding-3-small") == "text-embedding-3-small"
    with group_scope(tenant_a.group):
        assert set(KnowledgeEmbedding.objects.values_list("model", flat=True)) == {
            "text-embedding-3-small"
        }  # the old model's vectors are dropped once nothing asks for them
        assert list(EmbeddingIndex.objects.values_list("model", "status")) == [
            ("text-embedding-3-small", "ready")
        ]


def test_an_agent_keeps_its_own_model_alongside_the_groups(hosted, tenant_a):
    from ontology import services

    services.thing_update(
        thing=tenant_a.agent,
        actor=tenant_a.owner,
        properties={**tenant_a.agent.properties, "embeddingModel": "text-embedding-3-small"},
    )
    source = ingest_text(tenant_a.group, "Pets", PETS)
    with group_scope(tenant_a.group):
        assert sorted(
            KnowledgeEmbedding.objects.filter(source=source).values_list("model", flat=True)
        ) == ["all-MiniLM-L6-v2", "text-embedding-3-small"]
    assert source.embedded_count == source.embed_total == 2
