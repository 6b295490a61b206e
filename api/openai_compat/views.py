"""OpenAI's routes over Parley's agents: thin views; the work is in the modules beside them.

Every view takes the API token as OpenAI's bearer key (api.auth) and answers errors in
OpenAI's shape, so its SDKs raise their usual exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET, require_POST

from agents.configuration import (
    AgentConfig,
    GroupConfiguration,
    cached_configuration,
    group_configuration,
)
from api.auth import CHAT, READ, token_required
from api.errors import openai_error
from api.keepalive import with_keep_alive
from api.openai_compat import answers, catalog
from api.openai_compat import embeddings as embedding
from api.openai_compat.bodies import (
    CompletionRequest,
    InvalidBody,
    completion_request,
    embedding_request,
)
from api.openai_compat.chunks import Shape
from api.openai_compat.conversation import RequestConversation
from api.openai_compat.runs import RequestTurn, ThreadTurn
from billing.ratelimits import RateLimited, amessage_rate_limited
from chat import selectors as chat_selectors
from chat.runs import Busy
from ontology.db_async import db_call
from ontology.errors import ErrorCode
from ontology.versions import agroup_version, group_version_key, group_version_of

THREAD_HEADER = "X-Parley-Thread"


def _unknown_model(model: str) -> JsonResponse:
    return openai_error(
        ErrorCode.NOT_FOUND,
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
    )


def _invalid(error: InvalidBody) -> JsonResponse:
    return openai_error(ErrorCode.INVALID_REQUEST, error.message, param=error.param)


def _rate_limited(retry_after: int) -> JsonResponse:
    return openai_error(
        ErrorCode.RATE_LIMITED,
        f"Too many messages. Please wait {retry_after} seconds and try again.",
        retry_after=retry_after,
    )


@require_GET
@token_required(READ, errors=openai_error)
def model_list(request: HttpRequest) -> JsonResponse:
    models = catalog.agent_models(request.group)
    return JsonResponse({"object": "list", "data": [m.as_openai() for m in models]})


@require_GET
@token_required(READ, errors=openai_error)
def model_detail(request: HttpRequest, model_id: str) -> JsonResponse:
    for model in catalog.agent_models(request.group):
        if model.id == model_id:
            return JsonResponse(model.as_openai())
    return _unknown_model(model_id)


@dataclass(frozen=True)
class Completion:
    """What a completion request was admitted with: its body, its agent, the group's
    configuration the agent was found in."""

    asked: CompletionRequest
    agent: AgentConfig
    configuration: GroupConfiguration


async def admit_completion(request: HttpRequest) -> HttpResponse | None:
    """Read the body, find the agent its model names and (stateless) count the message, in
    the event loop after the token's admission (api.auth): sets `request.completion`, or
    refuses. A thread's turn is counted by chat.turns, as the browser's are."""
    try:
        asked = completion_request(request)
    except InvalidBody as error:
        return _invalid(error)
    configuration = await _configuration(request)
    agent = catalog.agent_for_model(configuration, asked.model)
    if agent is None:
        return _unknown_model(asked.model)
    if THREAD_HEADER not in request.headers:
        retry_after = await amessage_rate_limited(user=request.user, group=request.group)
        if retry_after is not None:
            return _rate_limited(retry_after)
    request.completion = Completion(asked, agent, configuration)
    return None


def _configuration_key(request: HttpRequest) -> list[str]:
    return [group_version_key(request.group.pk)]


async def _configuration(request: HttpRequest) -> GroupConfiguration:
    """The group's agents and keys: this process's copy when the group's version (read with
    the token's check, else from the event loop now) says it is current, else loaded on a
    database thread."""
    group = request.group
    peeked = getattr(request, "peeked", None)
    if peeked is not None:
        version = group_version_of(peeked[group_version_key(group.pk)])
    else:
        version = await agroup_version(group.pk)
    cached = cached_configuration(group.pk, version) if version is not None else None
    return cached or await db_call(group_configuration)(group)


@require_POST
@token_required(CHAT, errors=openai_error, then=admit_completion, peek=_configuration_key)
async def chat_completions(request: HttpRequest) -> HttpResponse:
    group, user = request.group, request.user
    asked, agent = request.completion.asked, request.completion.agent
    if THREAD_HEADER in request.headers:
        turn_or_refusal = await _thread_turn(request, agent.id, asked.question)
        if isinstance(turn_or_refusal, HttpResponse):
            return turn_or_refusal
        turn = turn_or_refusal
    else:
        conversation = RequestConversation(
            group=group,
            agent_id=agent.id,
            model=asked.model,
            history=asked.history,
            token=request.token,
        )
        turn = RequestTurn(
            group=group,
            user=user,
            conversation=conversation,
            configuration=request.completion.configuration,
        ).start()
    shape = Shape(run_id=turn.run_id, model=asked.model)
    try:
        start = await answers.opening(turn)
        if start.failed:
            return openai_error(*answers.error_of(start.last))
        if asked.stream:
            body = answers.chunks(turn, start, shape, include_usage=asked.include_usage)
            turn = None  # the stream owns the turn now
            return _event_stream(body)
        answer = await answers.completion(turn, start, shape)
        if answer.get("type") == "error":
            return openai_error(*answers.error_of(answer))
        return JsonResponse(answer)
    finally:
        if turn is not None:  # the answer is complete, or the client left while it waited
            if not turn.ended:
                turn.abandon()
            await turn.close()


async def _thread_turn(request: HttpRequest, agent_id: int, question: str):
    """The turn on the thread the header names, or the response refusing it."""
    group, user = request.group, request.user
    raw = request.headers[THREAD_HEADER].strip()
    thread = None
    if raw.isdigit() and len(raw) < 19:
        thread = await db_call(chat_selectors.thread_for_reader)(
            group=group, user=user, thread_id=int(raw)
        )
    if thread is None or not chat_selectors.may_write(thread=thread, user=user):
        return openai_error(ErrorCode.NOT_FOUND, "No such thread.", param=THREAD_HEADER)
    if thread.agent_id != agent_id:
        return openai_error(
            ErrorCode.INVALID_REQUEST,
            "That thread is answered by another agent: name its model.",
            param="model",
        )
    try:
        return await ThreadTurn(thread_id=thread.pk).start(
            group=group, user=user, thread=thread, content=question
        )
    except Busy:
        return openai_error(ErrorCode.BUSY, "The thread is still answering; try again then.")
    except RateLimited as limited:
        return _rate_limited(limited.retry_after)
    except ValidationError as error:
        return openai_error(ErrorCode.INVALID_REQUEST, " ".join(error.messages))


def _event_stream(body) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        with_keep_alive(body), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy must pass each chunk on at once
    return response


@require_POST
@token_required(CHAT, errors=openai_error)
async def embeddings(request: HttpRequest) -> HttpResponse:
    try:
        asked = embedding_request(request)
    except InvalidBody as error:
        return _invalid(error)
    return await embedding.respond(group=request.group, user=request.user, asked=asked)
