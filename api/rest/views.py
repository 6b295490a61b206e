"""Parley's JSON API (/api/v1/, docs/api.md): what the chat socket offers a browser, for
programs holding an API token. Thin: check the body, call chat's selectors, services and
turns, word the answer.

Views are async and do their database work through db_call (the request pool), as the
socket does. `token_required` authenticates, rate-limits and opens the group's scope;
threads are found through chat.selectors, so another tenant's thread, a colleague's and a
missing one all answer the same 404.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from agents.configuration import group_configuration
from api.auth import CHAT, READ, token_required
from api.errors import api_error
from api.follow import ThreadFollower
from api.rest import payloads, reads, streams
from api.rest.bodies import message_body, thread_body
from api.rest.http import Problem, endpoint, int_param
from api.rest.openapi import document
from billing.ratelimits import RateLimited
from billing.selectors import budget_status, usage_report
from chat import selectors, services, turns
from chat.models import AIThread
from chat.runs import Busy, active_run_id, registry
from ontology.access import is_manager
from ontology.db_async import db_call, io_call
from ontology.errors import ErrorCode

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_USAGE_DAYS = 366


async def _readable_thread(request: HttpRequest, thread_id: int) -> AIThread:
    thread = await db_call(selectors.thread_for_reader)(
        group=request.group, user=request.user, thread_id=thread_id
    )
    if thread is None:
        raise Problem(ErrorCode.NOT_FOUND, "No such thread.")
    return thread


async def _writable_thread(request: HttpRequest, thread_id: int) -> AIThread:
    thread = await _readable_thread(request, thread_id)
    if not selectors.may_write(thread=thread, user=request.user):
        raise Problem(ErrorCode.READ_ONLY)
    return thread


# --- agents and threads ------------------------------------------------------------------


@token_required(READ)
async def agent_list(request: HttpRequest) -> HttpResponse:
    configuration = await db_call(group_configuration)(request.group)
    agents = sorted(
        (agent for agent in configuration.agents.values() if agent.active),
        key=lambda agent: (agent.name.lower(), agent.id),
    )
    return JsonResponse({"data": [payloads.agent_payload(agent) for agent in agents]})


@token_required(READ)
async def thread_list(request: HttpRequest) -> HttpResponse:
    limit = int_param(request, "limit", default=PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
    before = int_param(request, "before", default=0, low=0, high=2**63 - 1) or None
    threads, next_cursor = await db_call(reads.threads_page)(
        group=request.group, user=request.user, before=before, limit=limit
    )
    data = [payloads.thread_payload(thread, user=request.user) for thread in threads]
    return JsonResponse({"data": data, "next": next_cursor})


@token_required(CHAT)
async def thread_create(request: HttpRequest) -> HttpResponse:
    body = thread_body(request)
    agent = await db_call(reads.agent_of_group)(body.agent_id)
    if agent is None:
        raise Problem(ErrorCode.NOT_FOUND, "No such agent.")
    try:
        thread = await db_call(services.thread_create)(
            group=request.group, agent=agent, user=request.user, title=body.title
        )
    except ValidationError:
        raise Problem(ErrorCode.AGENT_UNAVAILABLE) from None
    return JsonResponse(payloads.thread_payload(thread, user=request.user), status=201)


@token_required(READ)
async def thread_detail(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = await _readable_thread(request, thread_id)
    return JsonResponse(payloads.thread_payload(thread, user=request.user))


# --- messages and runs ---------------------------------------------------------------------


@token_required(READ)
async def message_list(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = await _readable_thread(request, thread_id)
    limit = int_param(request, "limit", default=PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
    after = None
    if request.GET.get("after"):
        try:
            after = uuid.UUID(request.GET["after"])
        except ValueError:
            raise Problem(ErrorCode.INVALID, "`after` must be a message id.") from None
    page = await db_call(reads.messages_page)(thread=thread, after=after, limit=limit)
    if page is None:
        raise Problem(ErrorCode.INVALID, "`after` is not a message of this thread.")
    messages, next_cursor = page
    data = [payloads.message_payload(message) for message in messages]
    return JsonResponse({"data": data, "next": next_cursor})


@token_required(CHAT)
async def message_send(request: HttpRequest, thread_id: int) -> HttpResponse:
    body = message_body(request)
    thread = await _writable_thread(request, thread_id)
    follower = ThreadFollower(thread.pk)
    await follower.__aenter__()  # before the run starts: it hears every event of it
    try:
        run_id, question = await turns.send_message(
            group=request.group,
            thread=thread,
            user=request.user,
            content=body.content,
            client_id=body.client_id,
            agent_id=body.agent_id,
        )
        follower.expect(run_id)
        created = {
            "type": "message.created",
            "message": payloads.message_payload(question),
        }
        if body.stream:
            response = streams.sse_response(streams.turn_events(follower, str(run_id), created))
            follower = None  # the stream leaves it
            return response
        final = None
        async for event in follower.run_events(run_id):
            final = event
    except Busy:
        raise Problem(ErrorCode.BUSY) from None
    except RateLimited as limited:
        return api_error(
            ErrorCode.RATE_LIMITED,
            f"You are sending messages too fast. Try again in {limited.retry_after} s.",
            retry_after=limited.retry_after,
        )
    except ValidationError as problem:
        raise Problem(ErrorCode.INVALID, " ".join(problem.messages)) from None
    finally:
        if follower is not None:
            await follower.__aexit__(None, None, None)
    if final is not None and final.get("code") == ErrorCode.QUOTA_EXCEEDED:
        raise Problem(ErrorCode.QUOTA_EXCEEDED, final.get("message"))
    final = final or {}
    answer = await db_call(reads.stored_message)(thread=thread, message_id=final.get("message_id"))
    return JsonResponse(
        {
            "question": created["message"],
            "answer": payloads.message_payload(answer) if answer is not None else None,
            "run": payloads.run_payload(str(run_id), final, answer),
        }
    )


@token_required(CHAT)
async def run_stop(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = await _writable_thread(request, thread_id)
    run_id = await io_call(active_run_id)(thread.pk)
    if run_id is None:
        return JsonResponse({"stopped": False, "run_id": None})
    await registry().request_stop(thread.pk)
    return JsonResponse({"stopped": True, "run_id": run_id}, status=202)


def _after_seq(request: HttpRequest) -> int:
    if "after_seq" in request.GET:
        return int_param(request, "after_seq", default=0, low=0, high=2**31 - 1)
    last_event_id = request.headers.get("Last-Event-ID", "").strip()
    if not last_event_id:
        return 0
    if not last_event_id.isdigit():
        raise Problem(ErrorCode.INVALID, "`Last-Event-ID` must be an event's seq.")
    return int(last_event_id)


def _wants_stream(request: HttpRequest) -> bool:
    if request.GET.get("stream") in ("true", "1"):
        return True
    return "text/event-stream" in request.headers.get("Accept", "")


@token_required(READ)
async def run_events(request: HttpRequest, thread_id: int, run_id: uuid.UUID) -> HttpResponse:
    thread = await _readable_thread(request, thread_id)
    after_seq = _after_seq(request)
    run = str(run_id)
    going = await io_call(active_run_id)(thread.pk) == run
    if not going and not await db_call(reads.run_known)(thread=thread, run_id=run):
        raise Problem(ErrorCode.NOT_FOUND, "No such run in this thread.")
    if _wants_stream(request):
        return streams.sse_response(
            streams.resumed_events(
                group=request.group, thread=thread, run_id=run, after_seq=after_seq
            )
        )
    events = await db_call(selectors.run_events)(thread=thread, run_id=run, after_seq=after_seq)
    done = not going or any(event["type"] in streams.FINAL_EVENTS for event in events)
    return JsonResponse({"data": events, "done": done})


# --- usage and the document ------------------------------------------------------------------


def _day(request: HttpRequest, name: str, default: date) -> date:
    value = request.GET.get(name)
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Problem(ErrorCode.INVALID, f"`{name}` must be a date (YYYY-MM-DD).") from None


def _usage(group, start: date, end: date) -> dict:
    return payloads.usage_payload(
        usage_report(group=group, start=start, end=end), budget_status(group=group)
    )


@token_required(READ)
async def usage(request: HttpRequest) -> HttpResponse:
    if not is_manager(request.group):
        raise Problem(
            ErrorCode.MANAGERS_ONLY, "Only the organisation's owners and admins can read its usage."
        )
    today = timezone.localdate()
    start = _day(request, "start", today.replace(day=1))
    end = _day(request, "end", today)
    if end < start:
        raise Problem(ErrorCode.INVALID, "`end` must not be before `start`.")
    if end - start >= timedelta(days=MAX_USAGE_DAYS):
        raise Problem(ErrorCode.INVALID, f"Ask for at most {MAX_USAGE_DAYS} days at a time.")
    return JsonResponse(await db_call(_usage)(request.group, start, end))


async def openapi(request: HttpRequest) -> HttpResponse:
    return JsonResponse(document(max_message_chars=settings.PARLEY_MAX_MESSAGE_CHARS))


# One view per URL, dispatching on the method (api.rest.http.endpoint).
agents = endpoint(GET=agent_list)
threads = endpoint(GET=thread_list, POST=thread_create)
thread = endpoint(GET=thread_detail)
messages = endpoint(GET=message_list, POST=message_send)
stop = endpoint(POST=run_stop)
events = endpoint(GET=run_events)
usage_view = endpoint(GET=usage)
openapi_view = endpoint(GET=openapi)
