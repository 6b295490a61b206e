"""Conversations: a thread between people of a group and one of its agents, and its messages."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models.functions import Upper
from django.urls import reverse
from django.utils import timezone

from ontology.models import Group, TenantModel, Thing


class AIThread(TenantModel):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        HANDED_OFF = "handed_off", "Handed to a human"
        ARCHIVED = "archived", "Archived"

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="threads")
    agent = models.ForeignKey(
        Thing, null=True, blank=True, on_delete=models.SET_NULL, related_name="threads"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="threads"
    )
    title = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    handoff_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_activity_at = models.DateTimeField(default=timezone.now)
    # Times, not booleans: the list orders pinned threads by when they were pinned, and the
    # archived view by when they were put away. Both are the author's own filing, apart from
    # `status` (a handed-off thread can be archived too).
    pinned_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "thread"
        ordering = ["-last_activity_at"]
        indexes = [
            models.Index(fields=["group", "-last_activity_at"]),
            # Thread search is a case-insensitive "contains" (UPPER(title) LIKE UPPER(...)).
            GinIndex(OpClass(Upper("title"), name="gin_trgm_ops"), name="chat_thread_title_trgm"),
        ]

    def __str__(self) -> str:
        return self.title or f"Thread {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("thread-detail", args=[self.pk])


class Message(TenantModel):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Feedback(models.TextChoices):
        UP = "up", "Helpful"
        DOWN = "down", "Not helpful"

    class Status(models.TextChoices):
        STREAMING = "streaming", "Streaming"
        COMPLETE = "complete", "Complete"
        STOPPED = "stopped", "Stopped"
        ERROR = "error", "Error"
        INTERRUPTED = "interrupted", "Interrupted"
        REPLACED = "replaced", "Replaced by a regenerated answer"

    # Made by us, not the database: a run names its message before the row exists.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="messages")
    thread = models.ForeignKey(AIThread, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    content = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.COMPLETE)
    error_code = models.CharField(max_length=40, blank=True)
    run_id = models.UUIDField(null=True, blank=True, unique=True)
    client_id = models.CharField(max_length=64, blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    sources = models.JSONField(default=list, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    feedback = models.CharField(max_length=4, choices=Feedback.choices, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    # The conversation is a tree (chat/tree.py): a question follows the message it was
    # asked after, an answer its question. An edited question and a regenerated answer
    # are siblings of the one they replace; `selected_at` says which sibling of a branch
    # point is shown (the latest chosen), so each branch keeps its own choices.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    selected_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["thread", "created_at"]),
            # Thread search looks in every message: without it, each search reads them all.
            GinIndex(
                OpClass(Upper("content"), name="gin_trgm_ops"), name="chat_message_content_trgm"
            ),
            # Every process sweeps for answers whose heartbeat stopped, every few seconds.
            models.Index(
                fields=["updated_at"],
                name="chat_message_streaming",
                condition=models.Q(status="streaming"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


class RunEvent(TenantModel):
    """One event of a run, in order: the durable log a reconnecting client resumes from.

    Written in batches while the run streams, so a resume survives a Redis restart.
    """

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="run_events")
    thread = models.ForeignKey(AIThread, on_delete=models.CASCADE, related_name="run_events")
    run_id = models.UUIDField()
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=30)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run_id", "seq"], name="run_event_seq")]
        indexes = [models.Index(fields=["thread", "run_id", "seq"])]
        ordering = ["run_id", "seq"]


class ThreadShare(TenantModel):
    """A read-only link to a thread for the members of its group, until it is revoked.

    The link names a random token rather than the thread's id: revoking and sharing again
    gives a new link, so a copy of the old one stays dead; and the link says nothing about
    how many threads the group has. The token is not the only lock: whoever opens it must
    also be a member of the thread's group (chat.selectors.share_for_member).
    """

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="thread_shares")
    thread = models.ForeignKey(AIThread, on_delete=models.CASCADE, related_name="shares")
    token = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = "thread share"
        constraints = [
            models.UniqueConstraint(
                fields=["thread"],
                condition=models.Q(revoked_at__isnull=True),
                name="chat_one_live_share_per_thread",
            )
        ]

    def __str__(self) -> str:
        return f"Share of {self.thread}"

    def get_absolute_url(self) -> str:
        return reverse("shared-thread", args=[self.token])
