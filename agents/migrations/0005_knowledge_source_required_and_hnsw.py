import django.db.models.deletion
from django.db import migrations, models

HNSW_INDEXES = {
    # model: dimensions (agents.retrieval.indexes.create_sql, frozen here as migrations are)
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "all-MiniLM-L6-v2": 384,
    "nomic-embed-text": 768,
}


def _index_name(model):
    import re

    return "knowledge_hnsw_" + re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:40]


def hnsw_create(model, dims):
    return (
        f"CREATE INDEX IF NOT EXISTS {_index_name(model)} ON agents_knowledgeembedding "
        f"USING hnsw ((embedding::halfvec({dims})) halfvec_cosine_ops) "
        f"WITH (m = 16, ef_construction = 64) WHERE model = '{model}'"
    )


class Migration(migrations.Migration):
    """Separate from 0004: Postgres refuses ALTER TABLE while 0004's row updates have
    pending deferred foreign-key checks in the same transaction."""

    dependencies = [
        ("agents", "0004_knowledge_sources_and_embeddings"),
    ]

    operations = [
        migrations.AlterField(
            model_name="knowledge",
            name="source",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="chunks",
                to="agents.knowledgesource",
            ),
        ),
        *[
            migrations.RunSQL(
                hnsw_create(model, dims), f"DROP INDEX IF EXISTS {_index_name(model)}"
            )
            for model, dims in HNSW_INDEXES.items()
        ],
    ]
