"""Reaching a thread or message named in a URL: missing and forbidden look the same.

Zulip's `access_stream_by_id` is the model: one helper per entity that every path
naming it goes through, so the rule (chat.selectors.readable_threads) is checked once.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import PermissionDenied
from django.http import Http404

from chat import selectors
from chat.models import AIThread, Message, ThreadShare
from ontology.errors import ErrorCode, sentence_for
from ontology.models import Group, User


def access_thread_by_id(
    *, group: Group, user: User, thread_id: int, for_write: bool = False
) -> AIThread:
    """The thread if the user may read it (404 for missing and hidden alike); `for_write`
    lets only its author through: an owner or admin reading a colleague's thread gets 403."""
    thread = selectors.thread_for_reader(group=group, user=user, thread_id=thread_id)
    if thread is None:
        raise Http404("No such conversation.")
    if for_write and not selectors.may_write(thread=thread, user=user):
        raise PermissionDenied(sentence_for(ErrorCode.READ_ONLY))
    return thread


def access_message_by_id(
    *, group: Group, user: User, thread_id: int, message_id: uuid.UUID, for_write: bool = False
) -> tuple[AIThread, Message]:
    thread = access_thread_by_id(group=group, user=user, thread_id=thread_id, for_write=for_write)
    message = selectors.message_in_thread(thread=thread, message_id=message_id)
    if message is None:
        raise Http404("No such message.")
    return thread, message


def access_share_by_token(*, user: User, token: str) -> ThreadShare:
    """The share a link names if the user may follow it; 404 for a revoked, unknown or
    other group's link alike, so a link says nothing to whoever may not open it."""
    share = selectors.share_for_member(user=user, token=token)
    if share is None:
        raise Http404("No such conversation.")
    return share
