"""The usage ledger: one row per provider call, priced at call time."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from agents.catalog import MAX_MODEL_CHARS
from ontology.models import Group, TenantModel, Thing

COST_QUANTUM = Decimal("0.00000001")  # dollars; cents are exact far beyond any single call


class AICall(TenantModel):
    """One provider call (each loop step, retry and fallback gets its own row).

    The id is derived from the run, step and attempt, so writing the same call
    twice is a no-op and can never charge twice. Prices are copied in, so a
    later price change never rewrites the past.
    """

    class Status(models.TextChoices):
        OK = "ok", "OK"
        STOPPED = "stopped", "Stopped"
        FAILED = "failed", "Failed"

    class Purpose(models.TextChoices):
        CHAT = "chat", "Chat"
        TITLE = "title", "Title"
        EMBEDDING = "embedding", "Embedding"

    id = models.UUIDField(primary_key=True, editable=False)
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="ai_calls")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    agent = models.ForeignKey(
        Thing, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    thread = models.ForeignKey(
        "chat.AIThread", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    run_id = models.UUIDField(null=True, blank=True, db_index=True)
    purpose = models.CharField(max_length=12, choices=Purpose.choices, default=Purpose.CHAT)
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=MAX_MODEL_CHARS)
    step = models.PositiveIntegerField(default=0)
    attempt = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    usage_exact = models.BooleanField(default=True)
    input_price = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    output_price = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    cached_price = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    cost = models.DecimalField(max_digits=16, decimal_places=8, default=Decimal(0))
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    error_code = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "AI call"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["group", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} {self.input_tokens}+{self.output_tokens} ${self.cost}"
