import hashlib

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.deletion
import django.utils.timezone
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models


def passages_to_sources(apps, schema_editor):
    """Each passage written before sources existed becomes a one-chunk text source."""
    Knowledge = apps.get_model("agents", "Knowledge")
    KnowledgeSource = apps.get_model("agents", "KnowledgeSource")
    for passage in Knowledge.objects.filter(source__isnull=True).iterator():
        raw = f"# {passage.title}\n\n{passage.content}".encode()
        digest = hashlib.sha256(raw).hexdigest()
        source, _ = KnowledgeSource.objects.get_or_create(
            group_id=passage.group_id,
            content_hash=digest,
            defaults={
                "kind": "text",
                "title": passage.title,
                "raw": raw,
                "size_bytes": len(raw),
                "status": "ready",
                "chunk_count": 1,
            },
        )
        passage.source = source
        passage.save(update_fields=["source"])
    # Fire the deferred foreign-key checks now: the indexes this migration creates last
    # cannot be built on a table with pending trigger events (a database with passages).
    schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0003_toolcall_thread_toolcall_user_and_more"),
        ("ontology", "0002_pgvector_and_append_only_events"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="knowledge",
            options={
                "ordering": ["source", "position"],
                "verbose_name": "knowledge chunk",
                "verbose_name_plural": "knowledge chunks",
            },
        ),
        migrations.AddField(
            model_name="knowledge",
            name="section",
            field=models.CharField(
                blank=True, help_text="Heading path, e.g. A › B.", max_length=500
            ),
        ),
        migrations.AddField(
            model_name="knowledge",
            name="token_count",
            field=models.PositiveIntegerField(default=0),
        ),
        # The full-text vector now covers the heading path too: drop it and its index, add again.
        migrations.RemoveIndex(model_name="knowledge", name="knowledge_search_gin"),
        migrations.RemoveField(model_name="knowledge", name="search_vector"),
        migrations.AddField(
            model_name="knowledge",
            name="search_vector",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.contrib.postgres.search.SearchVector(
                    "title", "section", "content", config="english"
                ),
                output_field=django.contrib.postgres.search.SearchVectorField(),
            ),
        ),
        migrations.AddIndex(
            model_name="knowledge",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["search_vector"], name="knowledge_search_gin"
            ),
        ),
        migrations.CreateModel(
            name="EmbeddingIndex",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("model", models.CharField(max_length=120)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("building", "Building"),
                            ("ready", "Ready"),
                            ("failed", "Failed"),
                        ],
                        default="building",
                        max_length=10,
                    ),
                ),
                ("error", models.TextField(blank=True)),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                ("ready_at", models.DateTimeField(blank=True, null=True)),
                (
                    "group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="embedding_indexes",
                        to="ontology.group",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="KnowledgeSource",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[("file", "File"), ("text", "Text"), ("url", "URL")], max_length=8
                    ),
                ),
                ("title", models.CharField(max_length=300)),
                ("filename", models.CharField(blank=True, max_length=255)),
                ("url", models.URLField(blank=True, max_length=2000)),
                ("content_type", models.CharField(blank=True, max_length=100)),
                ("raw", models.BinaryField(default=bytes)),
                ("size_bytes", models.PositiveIntegerField(default=0)),
                ("content_hash", models.CharField(max_length=64)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("chunking", "Chunking"),
                            ("embedding", "Embedding"),
                            ("ready", "Ready"),
                            ("failed", "Failed"),
                        ],
                        default="queued",
                        max_length=10,
                    ),
                ),
                ("error", models.TextField(blank=True)),
                ("chunk_count", models.PositiveIntegerField(default=0)),
                ("embedded_count", models.PositiveIntegerField(default=0)),
                ("embed_total", models.PositiveIntegerField(default=0)),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="knowledge_sources",
                        to="ontology.group",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="KnowledgeEmbedding",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("model", models.CharField(max_length=120)),
                ("embedding", pgvector.django.vector.VectorField()),
                (
                    "chunk",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="embeddings",
                        to="agents.knowledge",
                    ),
                ),
                (
                    "group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="ontology.group",
                    ),
                ),
                (
                    "source",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="agents.knowledgesource",
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="knowledge",
            name="source",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="chunks",
                to="agents.knowledgesource",
            ),
        ),
        migrations.AddIndex(
            model_name="knowledge",
            index=models.Index(fields=["source", "position"], name="knowledge_source_position"),
        ),
        migrations.AddConstraint(
            model_name="embeddingindex",
            constraint=models.UniqueConstraint(
                fields=("group", "model"), name="embedding_index_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="knowledgesource",
            constraint=models.UniqueConstraint(
                fields=("group", "content_hash"), name="knowledge_source_unique_content"
            ),
        ),
        migrations.AddIndex(
            model_name="knowledgeembedding",
            index=models.Index(fields=["source", "model"], name="knowledge_embedding_source"),
        ),
        migrations.AddConstraint(
            model_name="knowledgeembedding",
            constraint=models.UniqueConstraint(
                fields=("chunk", "model"), name="knowledge_embedding_unique"
            ),
        ),
        migrations.RunPython(passages_to_sources, migrations.RunPython.noop),
    ]
