from decimal import Decimal

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.utils import timezone

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


class PriceOverride(models.Model):
    """A deployment's own price for a catalog model (platform-wide, superusers only)."""

    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=120)
    input_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    output_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    cached_input_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal(0)
    )
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "model"], name="price_override_unique")
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


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


class Knowledge(TenantModel):
    """A chunk of a group's knowledge, searchable by full text (vectors arrive with retrieval)."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="knowledge")
    title = models.CharField(max_length=300)
    content = models.TextField()
    position = models.PositiveIntegerField(default=0)
    search_vector = models.GeneratedField(
        expression=SearchVector("title", "content", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name_plural = "knowledge"
        indexes = [GinIndex(fields=["search_vector"], name="knowledge_search_gin")]

    def __str__(self) -> str:
        return self.title


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
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"
