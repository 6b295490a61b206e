"""The audit trail's vocabulary: every type of Event, in one StrEnum.

Events are append-only, so a type's stored value never changes once written; the four
answer types keep the names they were first written under.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    GROUP_CREATED = "group.created"
    GROUP_UPDATED = "group.updated"
    MEMBERSHIP_CREATED = "membership.created"
    MEMBERSHIP_UPDATED = "membership.updated"
    MEMBERSHIP_DELETED = "membership.deleted"
    USER_PROFILE_UPDATED = "user.profile_updated"
    USER_PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 - an event name
    USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105
    USER_SESSIONS_ENDED = "user.sessions_ended"
    INVITATION_CREATED = "invitation.created"
    INVITATION_RESENT = "invitation.resent"
    INVITATION_REVOKED = "invitation.revoked"
    INVITATION_ACCEPTED = "invitation.accepted"
    AUTH_LOGIN = "auth.login"
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AGENT_CREATED = "agent.created"
    AGENT_UPDATED = "agent.updated"
    AGENT_DELETED = "agent.deleted"
    TASK_CREATED = "task.created"
    TASK_UPDATED = "task.updated"
    TASK_DELETED = "task.deleted"
    CONNECTION_CREATED = "connection.created"
    CREDENTIAL_CREATED = "credential.created"
    CREDENTIAL_UPDATED = "credential.updated"
    CREDENTIAL_DELETED = "credential.deleted"
    KNOWLEDGE_SOURCE_ADDED = "knowledge.source_added"
    KNOWLEDGE_SOURCE_DELETED = "knowledge.source_deleted"
    KNOWLEDGE_SOURCE_RETRIED = "knowledge.source_retried"
    KNOWLEDGE_SOURCE_FAILED = "knowledge.source_failed"
    THREAD_CREATED = "thread.created"
    THREAD_RENAMED = "thread.renamed"
    THREAD_TITLED = "thread.titled"
    THREAD_HANDED_OFF = "thread.handed_off"
    THREAD_AGENT_SWITCHED = "thread.agent_switched"
    THREAD_DELETED = "thread.deleted"
    THREAD_ARCHIVED = "thread.archived"
    THREAD_UNARCHIVED = "thread.unarchived"
    THREAD_PINNED = "thread.pinned"
    THREAD_UNPINNED = "thread.unpinned"
    THREAD_SHARED = "thread.shared"
    THREAD_SHARE_REVOKED = "thread.share_revoked"
    MESSAGE_SENT = "message.sent"
    MESSAGE_REPLACED = "message.replaced"
    MESSAGE_EDITED = "message.edited"
    MESSAGE_FEEDBACK = "message.feedback"
    ANSWER_COMPLETED = "ai_response_completed"
    ANSWER_STOPPED = "ai_response_stopped"
    ANSWER_FAILED = "ai_response_failed"
    ANSWER_INTERRUPTED = "ai_response_interrupted"
    QUOTA_EXCEEDED = "quota.exceeded"
    RATE_LIMIT_HIT = "rate_limit.hit"
    API_TOKEN_CREATED = "api_token.created"  # noqa: S105 - an event name, not a secret
    API_TOKEN_FIRST_USED = "api_token.first_used"  # noqa: S105
    API_TOKEN_REVOKED = "api_token.revoked"  # noqa: S105
    API_COMPLETION = "api.completion"

    @classmethod
    def for_thing(cls, thing_type: str, action: str) -> EventType:
        """The type of a change to a Thing: `agent.created`, `task.deleted`..."""
        return cls(f"{thing_type}.{action}")
