from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField

from ontology.models import Group, TenantModel, Thing
from ontology.scoping import TenantManager


class AgentManager(TenantManager):
    def get_queryset(self):
        return super().get_queryset().filter(type=Thing.Type.AGENT)


class Agent(Thing):
    """An agent is a Thing of type "agent"; this proxy gives it its own admin and manager."""

    objects = AgentManager()

    class Meta:
        proxy = True
        verbose_name = "agent"


class ProviderCredential(TenantModel):
    """A group's own API key (encrypted at rest) and optional endpoint for one provider."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="credentials")
    provider = models.CharField(max_length=40)
    encrypted_api_key = models.TextField()
    key_hint = models.CharField(max_length=12, blank=True, help_text="Last characters only.")
    base_url = models.URLField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "provider"], name="credential_unique")
        ]

    def __str__(self) -> str:
        return f"{self.provider} key …{self.key_hint}"


class KnowledgeSource(TenantModel):
    """A document a group added to its knowledge: a file, pasted text or a URL to fetch.

    The original bytes are kept (not a file on disk), so a worker on another
    machine can extract and chunk it, and a failed source can be retried.
    """

    class Kind(models.TextChoices):
        FILE = "file", "File"
        TEXT = "text", "Text"
        URL = "url", "URL"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        CHUNKING = "chunking", "Chunking"
        EMBEDDING = "embedding", "Embedding"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="knowledge_sources")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    title = models.CharField(max_length=300)
    filename = models.CharField(max_length=255, blank=True)
    url = models.URLField(max_length=2000, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    raw = models.BinaryField(editable=False, default=bytes)
    size_bytes = models.PositiveIntegerField(default=0)
    content_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    embedded_count = models.PositiveIntegerField(default=0)
    embed_total = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    # A file attached in one conversation: searched only in it, listed only in it, shown
    # to its uploader and the group's managers. chat.AIThread's id (agents sits below
    # chat, so no foreign key; chat deletes a thread's attachments with it). None: the
    # group's shared knowledge.
    thread_id = models.BigIntegerField(null=True, blank=True, editable=False)

    TERMINAL = (Status.READY, Status.FAILED)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["group", "content_hash"],
                condition=models.Q(thread_id__isnull=True),
                name="knowledge_source_unique_content",
            ),
            models.UniqueConstraint(
                fields=["group", "thread_id", "content_hash"],
                condition=models.Q(thread_id__isnull=False),
                name="knowledge_source_unique_attachment",
            ),
        ]
        indexes = [
            models.Index(
                fields=["thread_id"],
                condition=models.Q(thread_id__isnull=False),
                name="knowledge_source_thread",
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def progress(self) -> int:
        """Percent done: chunking counts for nothing, each embedded chunk (per model) for one."""
        if self.status == self.Status.READY:
            return 100
        if not self.embed_total:
            return 0
        return min(99, int(100 * self.embedded_count / self.embed_total))


class Knowledge(TenantModel):
    """A chunk of a knowledge source: its text, its place in the document, its full-text vector.

    Its id is what a citation [n] links to (`knowledge-detail`). Embeddings live
    in KnowledgeEmbedding, one row per chunk and embedding model.
    """

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="knowledge")
    source = models.ForeignKey(KnowledgeSource, on_delete=models.CASCADE, related_name="chunks")
    title = models.CharField(max_length=300)
    section = models.CharField(max_length=500, blank=True, help_text="Heading path.")
    content = models.TextField()
    position = models.PositiveIntegerField(default=0)
    token_count = models.PositiveIntegerField(default=0)
    thread_id = models.BigIntegerField(null=True, blank=True, editable=False)  # its source's
    search_vector = models.GeneratedField(
        expression=SearchVector("title", "section", "content", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "knowledge chunk"
        verbose_name_plural = "knowledge chunks"
        ordering = ["source", "position"]
        indexes = [
            GinIndex(fields=["search_vector"], name="knowledge_search_gin"),
            models.Index(fields=["source", "position"], name="knowledge_source_position"),
        ]

    def __str__(self) -> str:
        from agents.knowledge.ingestion.chunk import SECTION_SEPARATOR

        return f"{self.title}{SECTION_SEPARATOR}{self.section}" if self.section else self.title


class KnowledgeEmbedding(TenantModel):
    """One chunk's vector under one embedding model. Models live side by side.

    The column has no fixed dimension; each model gets its own partial HNSW
    index on a fixed-dimension halfvec cast (agents.knowledge.retrieval.indexes), so a
    query only ever compares vectors of one model.
    """

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(KnowledgeSource, on_delete=models.CASCADE, related_name="+")
    chunk = models.ForeignKey(Knowledge, on_delete=models.CASCADE, related_name="embeddings")
    model = models.CharField(max_length=120)
    embedding = VectorField()
    thread_id = models.BigIntegerField(null=True, blank=True, editable=False)  # its source's

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chunk", "model"], name="knowledge_embedding_unique")
        ]
        indexes = [models.Index(fields=["source", "model"], name="knowledge_embedding_source")]

    def __str__(self) -> str:
        return f"{self.chunk_id} ({self.model})"


class EmbeddingIndex(TenantModel):
    """Whether a group's chunks are all embedded under one model (so searches may use it).

    A new model is built in the background; until it is ready, searches keep
    using a model that is, so changing models never leaves a group without answers.
    """

    class Status(models.TextChoices):
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="embedding_indexes")
    model = models.CharField(max_length=120)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BUILDING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "model"], name="embedding_index_unique")
        ]

    def __str__(self) -> str:
        return f"{self.model} ({self.status})"


class ToolCall(TenantModel):
    """One execution of a tool, keyed by the model's call id so a retry never runs it twice."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        OK = "ok", "OK"
        FAILED = "failed", "Failed"

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="tool_calls")
    call_id = models.CharField(max_length=120, unique=True)
    run_id = models.UUIDField(null=True, blank=True, db_index=True)
    thread = models.ForeignKey(
        "chat.AIThread", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    agent = models.ForeignKey(
        Thing, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        "ontology.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=80)
    arguments = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker last began it (committed before it runs)."
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"
