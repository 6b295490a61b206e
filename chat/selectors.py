"""Read paths for conversations. Tenant-owned reads go through the scoped managers."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.expressions import BaseExpression

from chat.models import AIThread, Message, RunEvent, ThreadShare
from chat.tree import Node, Step, active_path
from ontology.access import is_manager
from ontology.models import Group, Membership, Thing, User
from ontology.reads import Read
from ontology.scoping import group_scope, scopes_disabled


def readable_threads(*, group: Group, user: User) -> QuerySet[AIThread]:
    """The group's threads this member may read: their own, or all of them for the
    group's owners and admins (`group.role`, as `groups_for_user` annotates it).

    The one place the rule lives; pages, the socket and search all start here.
    """
    threads = AIThread.objects.filter(group=group)
    if is_manager(group):
        return threads
    return threads.filter(user=user)


def thread_for_reader(*, group: Group, user: User, thread_id: int) -> AIThread | None:
    """The thread if the user may read it in the active group; None for missing and
    forbidden alike (the caller answers both with the same 404)."""
    threads = readable_threads(group=group, user=user).filter(pk=thread_id)
    return threads.select_related("agent").first()


def thread_for_member(
    *, user: User, thread_id: int, **columns: BaseExpression
) -> tuple[Group, AIThread] | None:
    """The thread and its group (with the user's `role`) if the user may read it, in one
    query, whichever of the user's groups holds it; else None. `columns`: more values read
    in the same query, set on the thread by their names.

    The socket's edge: the thread names its tenant, so the lookup runs unscoped and the
    membership join is the tenant check (the group is then set once for the socket). A
    browser's socket reads the same rule in hand-written SQL (chat/socket_open.py): change
    both together (tests/chat/test_socket_open.py holds them to the same answers).
    """
    with scopes_disabled():
        found = list(
            AIThread.objects.filter(pk=thread_id, group__memberships__user=user)
            .annotate(viewer_role=F("group__memberships__role"))
            .filter(Q(user=user) | Q(viewer_role__in=Membership.ADMIN_ROLES))
            .annotate(**columns)
            .select_related("group")  # not its agent: a socket needs its id alone
            .order_by()[:1]  # one thread by its key: no ORDER BY to compile or run
        )
    if not found:
        return None
    thread = found[0]
    thread.group.role = thread.viewer_role
    return thread.group, thread


def may_write(*, thread: AIThread, user: User) -> bool:
    """Only the person who started a thread writes in it; owners and admins read others'."""
    return thread.user_id is not None and thread.user_id == user.pk


def message_payload(message: Message) -> dict[str, Any]:
    return {
        "id": str(message.pk),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created_at": message.created_at.isoformat(),
    }


def latest_run_id(*, thread: AIThread):
    with group_scope(thread.group):
        return (
            RunEvent.objects.filter(thread=thread)
            .order_by("-created_at", "-seq")
            .values_list("run_id", flat=True)
            .first()
        )


def run_events(*, thread: AIThread, run_id, after_seq: int, before_seq: int | None = None):
    with group_scope(thread.group):
        events = RunEvent.objects.filter(thread=thread, run_id=run_id, seq__gt=after_seq)
        if before_seq is not None:
            events = events.filter(seq__lt=before_seq)
        return [event.payload for event in events.order_by("seq")]


def message_in_thread(*, thread: AIThread, message_id) -> Message | None:
    with group_scope(thread.group):
        return Message.objects.filter(thread=thread, pk=message_id).first()


def threads_for_list(
    *, group: Group, user: User, query: str = "", everyone: bool = False, archived: bool = False
) -> QuerySet[AIThread]:
    """The user's threads, pinned first, then newest activity; with `everyone`, all they
    may read. Archived threads are a list of their own (`archived`), put away last first.

    A query matches the title or any visible message of the thread.
    """
    if everyone:
        threads = readable_threads(group=group, user=user)
    else:
        threads = AIThread.objects.filter(group=group, user=user)
    threads = threads.select_related("agent").filter(archived_at__isnull=not archived)
    query = query.strip()
    if query:
        matching = Message.objects.filter(group=group, content__icontains=query)  # any branch
        threads = threads.filter(Q(title__icontains=query) | Q(pk__in=matching.values("thread_id")))
    if archived:
        return threads.order_by("-archived_at", "-pk")
    return threads.order_by(F("pinned_at").desc(nulls_last=True), "-last_activity_at", "-pk")


def untouched_thread(*, group: Group, user: User, agent: Thing) -> AIThread | None:
    """The user's newest thread with the agent that has no title and no message yet."""
    said = Message.objects.filter(group=group, thread=OuterRef("pk"))
    return (
        AIThread.objects.filter(group=group, user=user, agent=agent, title="")
        .exclude(Exists(said))
        .order_by("-pk")
        .first()
    )


def thread_path(*, thread: AIThread) -> list[Step]:
    """The branch of the thread that is shown, root first (chat.tree), without the texts."""
    rows = Message.objects.filter(thread=thread).values_list(
        "id", "parent_id", "selected_at", "created_at"
    )
    return active_path(Node(*row) for row in rows)


def thread_messages(*, thread: AIThread, after=None) -> list[Message]:
    """What a reader sees: the shown branch, root first (after message `after` when
    given), each message with `.branch`, its place among its siblings (chat.tree.Step).
    One query: the thread's messages, other branches' too (a branch is a few messages,
    and the tree needs them all), rather than the tree and then the branch's rows."""
    return shown_branch(thread_rows(thread=thread), after=after)


_THREAD_ROWS = Read(Message, "thread_id")


def thread_rows(*, thread: AIThread) -> list[Message]:
    """Every message of the thread, every branch's, oldest first, in the active group.
    Each turn reads them: the statement is made once per process (ontology.reads)."""
    return _THREAD_ROWS(thread_id=thread.pk)


def shown_branch(messages: list[Message], *, after=None) -> list[Message]:
    """thread_messages from every message of the thread, read already."""
    rows = {message.id: message for message in messages}
    steps = active_path(Node(m.id, m.parent_id, m.selected_at, m.created_at) for m in rows.values())
    if after is not None:
        ids = [step.id for step in steps]
        steps = steps[ids.index(after) + 1 :] if after in ids else []
    shown = []
    for step in steps:
        message = rows[step.id]
        message.branch = step
        shown.append(message)
    return shown


def last_answer_id(*, thread: AIThread):
    """The id of the shown branch's last message if it is an answer (the one to regenerate)."""
    steps = thread_path(thread=thread)
    if not steps:
        return None
    role = Message.objects.filter(pk=steps[-1].id).values_list("role", flat=True).first()
    return steps[-1].id if role == Message.Role.ASSISTANT else None


def first_exchange(*, thread: AIThread) -> tuple[str, str] | None:
    """The question and answer that open an untitled thread; None once it has a title."""
    if not AIThread.objects.filter(pk=thread.pk, title="").exists():
        return None
    first = thread_messages(thread=thread)[:2]
    if not first or first[0].role != Message.Role.USER:
        return None
    return first[0].content, first[1].content if len(first) > 1 else ""


def live_share(*, thread: AIThread) -> ThreadShare | None:
    """The thread's link that still opens, if any (at most one: a database constraint)."""
    with group_scope(thread.group):
        return ThreadShare.objects.filter(thread=thread, revoked_at__isnull=True).first()


def share_for_member(*, user: User, token: str) -> ThreadShare | None:
    """The live share behind a link if the user is a member of its thread's group; else None
    (a revoked, unknown or other group's link alike).

    Like thread_for_member, an edge: the link names its tenant, whichever of the person's
    groups is active, so the lookup runs unscoped and the membership join is the tenant
    check. Any member may follow the link: sharing is how a thread reaches colleagues who
    may not read it otherwise (readable_threads).
    """
    if not user.is_authenticated:
        return None
    with scopes_disabled():
        return (
            ThreadShare.objects.filter(
                token=token, revoked_at__isnull=True, group__memberships__user=user
            )
            .select_related("group", "thread", "thread__agent", "created_by")
            .first()
        )
