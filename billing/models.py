"""The usage ledger (one row per provider call, priced at call time), plans, budgets, roll-ups."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from ontology.models import Group, TenantModel, Thing

COST_QUANTUM = Decimal("0.00000001")  # dollars; cents are exact far beyond any single call


MAX_MODEL_CHARS = 120  # as sent, scenario suffix included; every ledger row stores it


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
        db_table = "agents_priceoverride"  # created by the agents app before prices moved here
        constraints = [
            models.UniqueConstraint(fields=["provider", "model"], name="price_override_unique")
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


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
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
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


RATE_PATTERN = r"^\d+/\d*[smhd]$"


class Plan(models.Model):
    """What a plan allows: a monthly budget, message rates, upload size and agent count.

    Platform configuration, edited by superusers in the admin. A group's `plan`
    field names one of these by code; a code with no row uses the defaults in
    settings.PARLEY_PLAN_DEFAULTS (selectors.plan_for).
    """

    code = models.CharField(max_length=20, unique=True, choices=Group.Plan.choices)
    monthly_budget = models.DecimalField(
        "monthly budget (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Hard limit on provider cost per calendar month; empty means no limit.",
    )
    monthly_token_budget = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Hard limit on input + output tokens per calendar month; empty means no limit.",
    )
    message_rate_user = models.CharField(
        "messages per user",
        max_length=20,
        default="10/m",
        validators=[RegexValidator(RATE_PATTERN, "Write a rate like 10/m, 300/h or 5000/d.")],
        help_text="Messages one person may send: count/period, e.g. 10/m is ten a minute.",
    )
    message_rate_group = models.CharField(
        "messages per group",
        max_length=20,
        default="60/m",
        validators=[RegexValidator(RATE_PATTERN, "Write a rate like 60/m, 300/h or 5000/d.")],
        help_text="Messages the whole organisation may send: count/period.",
    )
    max_upload_mb = models.PositiveIntegerField(
        "max upload size (MB)", default=10, help_text="Largest knowledge file one upload may be."
    )
    max_agents = models.PositiveIntegerField(
        null=True, blank=True, help_text="Agents the organisation may create; empty means no limit."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["monthly_budget", "code"]

    def __str__(self) -> str:
        return self.get_code_display()

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


class MonthlyUsage(TenantModel):
    """A group's spend in one calendar month: the ledger's running total, kept for the budget.

    Written only by billing.services.ai_calls_record, in the transaction that inserts
    the ledger rows, under this row's lock; so it always equals the month's ledger sum.
    """

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="monthly_usage")
    month = models.DateField(help_text="First day of the month.")
    cost = models.DecimalField(max_digits=16, decimal_places=8, default=Decimal(0))
    tokens = models.PositiveBigIntegerField(default=0)
    calls = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "monthly usage"
        ordering = ["-month"]
        constraints = [
            models.UniqueConstraint(fields=["group", "month"], name="monthly_usage_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.group} {self.month:%Y-%m}: ${self.cost}"


class BudgetReservation(TenantModel):
    """The worst case of one provider call in flight, held against the group's budget.

    Deleted when the call's ledger row is written (settled). A reservation that is
    never settled (the process died) stops counting at `expires_at`.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    run_id = models.UUIDField(null=True, blank=True)
    cost = models.DecimalField(max_digits=16, decimal_places=8)
    tokens = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["group", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.group}: ${self.cost} / {self.tokens} tokens until {self.expires_at:%H:%M}"


class UsageDaily(TenantModel):
    """One day of the ledger, summed per provider, model, agent and user (billing.rollups)."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=120)
    agent = models.ForeignKey(
        Thing, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    calls = models.PositiveIntegerField(default=0)
    failed_calls = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=16, decimal_places=8, default=Decimal(0))

    class Meta:
        verbose_name = "daily usage"
        verbose_name_plural = "daily usage"
        ordering = ["-day", "provider", "model"]
        constraints = [
            models.UniqueConstraint(
                fields=["group", "day", "provider", "model", "agent", "user"],
                nulls_distinct=False,
                name="usage_daily_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.provider}/{self.model}: ${self.cost}"


class RolledUpDay(models.Model):
    """A day whose UsageDaily rows are complete; dashboards read the ledger for any other day."""

    day = models.DateField(primary_key=True)
    rolled_up_at = models.DateTimeField(default=timezone.now)
    calls = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.day}"
