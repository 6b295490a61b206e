"""Browsers' sockets opening: who each is and what it may read, in one statement for all
the sockets of a process opening together.

A browser's socket names a thread and carries a session. Opening it needs the session's
user (Django's ModelBackend: the row by its key, active, and the session's hash still
matching: no password change and no "sign out everywhere" since), then the thread if the
user may read it (a member of its group who wrote it, or an owner or admin there), with
its group, the reader's role there, and the run whose answer is streaming on it (the
lock's durable half, chat.runs.streaming_run).

Through the ORM that was two queries (the user; the thread) and, per socket, Django
compiling both: half of a socket's open in profiles. Here it is one hand-written
statement whose SQL is built once per process from the models' own columns, for every
socket opening in the same turn of the event loop (chat.consumers._opening): a round trip
to PostgreSQL per socket was a third of an open's time, and 100 sockets opening at once
waited for each other's, one after the other, on their shared trip. The tenant
check is the membership join, as in `chat.selectors.thread_for_member`, which programs'
sockets (the user known from their token) still use.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Model
from django.utils.crypto import constant_time_compare

from chat.models import AIThread, Message
from ontology.models import Group, Membership, User

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


# The user (None: nobody signed in, or a session no longer valid); when they may read it,
# the thread's group (its `role` the reader's) and the thread; the run streaming on it.
Opened = tuple[User | None, tuple[Group, AIThread] | None, str | None]
NOBODY: Opened = (None, None, None)


def model_backend_user_id(session) -> int | None:
    """The signed-in user's id when the session holds one signed in by Django's
    ModelBackend (as configured); else None: nobody, or another backend's user, for
    channels' get_user."""
    try:
        raw_id, backend = session[SESSION_KEY], session[BACKEND_SESSION_KEY]
        if backend != MODEL_BACKEND or backend not in settings.AUTHENTICATION_BACKENDS:
            return None
        return User._meta.pk.to_python(raw_id)
    except (KeyError, ValidationError):
        return None


def opened(session, found: tuple | None) -> Opened:
    """Who and where for a session, from its entry of `read_for_sessions`. A user gone or
    inactive is nobody; a session whose hash no longer matches is flushed (as Django's
    and channels' get_user do) and is nobody."""
    if found is None:
        return NOBODY
    user, group, thread, run_id = found
    if not user.is_active:  # ModelBackend.user_can_authenticate
        return NOBODY
    stored = session.get(HASH_SESSION_KEY)
    if not (stored and constant_time_compare(stored, user.get_session_auth_hash())):
        session.flush()
        return NOBODY
    if thread is None:
        return user, None, None
    return user, (group, thread), str(run_id) if run_id is not None else None


def read_for_sessions(wanted: list[tuple[int, int]], *, since: datetime) -> dict[int, tuple]:
    """For each (user_id, thread_id) of sessions naming `user_id` (model_backend_user_id),
    by its place in `wanted`: the user's row, and the thread's if they may read it, all in
    one statement; `opened` then checks each against its session. A user no longer there
    has no entry. `since`: the oldest heartbeat of an answer still streaming."""
    sql, names = _statement()
    admins = [role.value for role in Membership.ADMIN_ROLES]
    users, threads = [u for u, _ in wanted], [t for _, t in wanted]
    params = [Message.Status.STREAMING.value, since, users, threads, admins]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    user_end = 1 + len(names[User])
    thread_end = user_end + len(names[AIThread])
    group_end = thread_end + len(names[Group])
    found: dict[int, tuple] = {}
    for row in rows:
        user = _instance(User, names[User], row[1:user_end])
        if row[user_end] is None:  # no thread this user may read: the left join found none
            found[row[0] - 1] = (user, None, None, None)
            continue
        thread = _instance(AIThread, names[AIThread], row[user_end:thread_end])
        group = _instance(Group, names[Group], row[thread_end:group_end])
        group.role = row[group_end]
        thread.group = group
        found[row[0] - 1] = (user, group, thread, row[group_end + 1])
    return found


def _instance(model: type[Model], names: list[str], values) -> Model:
    return model.from_db(connection.alias, names, values)


@functools.cache
def _statement() -> tuple[str, dict[type[Model], list[str]]]:
    """The SQL (built once per process) and each model's field names, in column order.

    The wanted (user, thread) pairs are two arrays, numbered (`WITH ORDINALITY`, from 1),
    so one statement text serves any number of sockets. For each, the user's row always;
    the thread, its group and the reader's role only where the membership join allows (a
    LEFT JOIN of the three, so a user who may not read the thread still comes back, and
    the socket closes with "not found", not "not signed in"); the streaming run as a
    subquery."""
    q = connection.ops.quote_name
    names: dict[type[Model], list[str]] = {}
    selected: list[str] = []
    for model, alias in ((User, "u"), (AIThread, "t"), (Group, "g")):
        fields = model._meta.concrete_fields
        names[model] = [f.attname for f in fields]
        selected += [f"{alias}.{q(f.column)}" for f in fields]
    tables: dict[Any, str] = {
        m: q(m._meta.db_table) for m in (User, AIThread, Group, Membership, Message)
    }
    user_key = User._meta.pk.db_type(connection)
    thread_key = AIThread._meta.pk.db_type(connection)
    # The models' own table and column names, quoted; every value is bound.
    sql = f"""SELECT w.n, {", ".join(selected)}, m.role,
        (SELECT r.run_id FROM {tables[Message]} r WHERE r.thread_id = t.id
            AND r.status = %s AND r.updated_at >= %s ORDER BY r.created_at, r.id LIMIT 1)
    FROM unnest(%s::{user_key}[], %s::{thread_key}[]) WITH ORDINALITY AS w(user_id, thread_id, n)
    JOIN {tables[User]} u ON u.id = w.user_id
    LEFT JOIN ({tables[AIThread]} t
        JOIN {tables[Membership]} m ON m.group_id = t.group_id
        JOIN {tables[Group]} g ON g.id = t.group_id)
    ON t.id = w.thread_id AND m.user_id = u.id AND (t.user_id = u.id OR m.role = ANY(%s))"""  # noqa: S608
    return sql, names
