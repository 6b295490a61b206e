"""The ontology: tenants (groups), who belongs to them, the things they own, and the audit trail."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.crypto import salted_hmac

from ontology.scoping import TenantManager


class User(AbstractUser):
    """A person. Belongs to groups through Membership; owns no tenant data directly."""

    display_name = models.CharField(max_length=150, blank=True)
    preferences = models.JSONField(default=dict, blank=True)
    # Part of every session's check (_get_session_auth_hash): raising it signs the person
    # out everywhere else (ontology/accounts.py), as a password change does.
    session_generation = models.PositiveIntegerField(default=0, editable=False)

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username

    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        """Django's check of a session (also under SECRET_KEY_FALLBACKS), with the
        generation in it once raised."""
        if not self.session_generation:  # as Django's, so no session ends on upgrading
            return super()._get_session_auth_hash(secret=secret)
        return salted_hmac(
            "parley.User.get_session_auth_hash",
            f"{self.password}:{self.session_generation}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()


class Group(models.Model):
    """A tenant: an organisation or team whose data no other group ever sees."""

    class Type(models.TextChoices):
        ORGANIZATION = "organization", "Organization"
        TEAM = "team", "Team"
        PERSONAL = "personal", "Personal"

    class Plan(models.TextChoices):
        FREE = "free", "Free"
        TEAM = "team", "Team"
        BUSINESS = "business", "Business"
        ENTERPRISE = "enterprise", "Enterprise"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.ORGANIZATION)
    plan = models.CharField(max_length=20, choices=Plan.choices, default=Plan.FREE)
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TenantModel(models.Model):
    """Base of every tenant-owned row: a direct group FK and the fail-closed manager."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")

    objects = TenantManager()

    class Meta:
        abstract = True


class Membership(TenantModel):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    ADMIN_ROLES = (Role.OWNER, Role.ADMIN)

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "user"], name="membership_unique_user"),
        ]
        ordering = ["group", "user"]

    def __str__(self) -> str:
        return f"{self.user} in {self.group} ({self.role})"


class Thing(TenantModel):
    """A typed entity a group owns (an agent, a task, …) with properties validated per type."""

    class Type(models.TextChoices):
        AGENT = "agent", "Agent"
        TASK = "task", "Task"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"
        ARCHIVED = "archived", "Archived"

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="things")
    type = models.CharField(max_length=30, choices=Type.choices)
    name = models.CharField(max_length=200)
    properties = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["group", "type", "status"])]

    def __str__(self) -> str:
        return self.name


class Connection(TenantModel):
    """A typed edge inside one group, from a thing or user to a thing or user."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="connections")
    type = models.CharField(max_length=50)
    from_thing = models.ForeignKey(
        Thing, null=True, blank=True, on_delete=models.CASCADE, related_name="outgoing"
    )
    from_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="outgoing_connections",
    )
    to_thing = models.ForeignKey(
        Thing, null=True, blank=True, on_delete=models.CASCADE, related_name="incoming"
    )
    to_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="incoming_connections",
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(from_thing__isnull=True) ^ models.Q(from_user__isnull=True),
                name="connection_one_source",
            ),
            models.CheckConstraint(
                condition=models.Q(to_thing__isnull=True) ^ models.Q(to_user__isnull=True),
                name="connection_one_target",
            ),
        ]

    def __str__(self) -> str:
        source = self.from_thing or self.from_user
        target = self.to_thing or self.to_user
        return f"{source} —{self.type}→ {target}"


class AppendOnlyError(RuntimeError):
    """Audit events are written once and never changed."""


class EventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Events are append-only; they cannot be updated.")

    def delete(self):
        raise AppendOnlyError("Events are append-only; they cannot be deleted.")


class Event(TenantModel):
    """One audit row, written in the same transaction as the change it records.

    Append-only twice over: the ORM refuses updates and deletes, and a database
    trigger refuses them too (a group's own deletion is the one exception).
    """

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=80, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who did it; empty for the platform itself.",
    )
    target_type = models.CharField(max_length=50, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)

    objects = TenantManager.from_queryset(EventQuerySet)()

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [models.Index(fields=["group", "-timestamp"])]

    def __str__(self) -> str:
        return f"{self.type} {self.target_label}".strip()

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Events are append-only; they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Events are append-only; they cannot be deleted.")


class ApiToken(TenantModel):
    """A personal API token: one user in one group, with scopes. Only a hash of the secret is
    kept; the secret itself is shown once, when the token is made (ontology/tokens.py)."""

    class Scope(models.TextChoices):
        CHAT = "chat", "chat: start threads, send messages, stop runs"
        READ = "read", "read: agents, threads, messages, usage"

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="api_tokens")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The secret's first characters.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["group", "user"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > timezone.now()
        )


class Invitation(TenantModel):
    """An email address asked to join a group with a role. The link's secret is kept only as
    its SHA-256; resending makes a new secret, so only the newest link works
    (ontology/invitations.py)."""

    email = models.EmailField()
    role = models.CharField(
        max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER
    )
    digest = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    sent_at = models.DateTimeField(default=timezone.now)
    send_count = models.PositiveIntegerField(default=1)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                "group",
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_pending_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.group_id} ({self.role})"

    @property
    def pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None

    @property
    def usable(self) -> bool:
        return self.pending and self.expires_at > timezone.now()
