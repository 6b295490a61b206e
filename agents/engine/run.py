"""The agent loop: one run answers one user message, streaming events to a sink.

A run loads the agent and the conversation (chat's, through
agents.engine.conversation), builds the context, streams the model,
runs the tools it asks for (on Celery) and feeds their results back until the
model answers, bounded by the agent's max consecutive tool calls. Before the
first token, retryable failures are retried with backoff and jitter, then the
fallback model is tried. `stop()` ends the stream promptly and keeps the
partial answer. Every provider call becomes one ledger row, whatever its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings

from agents import catalog
from agents.configuration import AgentConfig, GroupConfiguration, group_configuration
from agents.engine.calls import (
    LEDGER_NAMESPACE,
    CallResult,
    ModelChoice,
    backoff_delay,
    measured_usage,
    merged_report,
    model_choice,
    worst_case,
)
from agents.engine.context import (
    fit_history,
    history_budget,
    system_prompt,
)
from agents.engine.conversation import USER, Answer, AnswerStatus, Conversation
from agents.engine.deltas import DeltaFrames
from agents.engine.events import (
    Delta,
    RunCompleted,
    RunEvent,
    RunFailed,
    RunStarted,
    RunStopped,
    Sources,
    ToolFinished,
    ToolStarted,
    wire,
)
from agents.knowledge.retrieval import Who, agent_embedding_model, aretrieve
from agents.providers import (
    ChatMessage,
    ChatRequest,
    Endpoint,
    Finished,
    ProviderError,
    TextDelta,
    ToolCallReady,
    ToolCallRequest,
    ToolDefinition,
    UsageReport,
    chat_provider,
)
from agents.text import storable_text
from agents.tools.dispatch import ToolOutcome, ToolRun, run_tool_calls
from agents.tools.registry import TOOLS
from billing.metering import Hold, MeteredCall, metered, price_deferred, settle, unbudgeted
from billing.models import AICall
from billing.pricing import Prices
from billing.services import LedgerEntry, QuotaExceeded
from ontology.db_async import TogetherOnOneTrip, db_call
from ontology.errors import sentence_for
from ontology.models import Group, User
from ontology.scoping import group_scope

logger = logging.getLogger(__name__)

# Runs ending in the same turn of the event loop save their answers on one trip to a
# database thread, each in its own tenant scope.
_finishing = TogetherOnOneTrip()

SEARCH_TOOL = "searchKnowledge"


class RunSink(Protocol):
    """Where a run's events go (the chat consumer forwards them; tests record them)."""

    async def emit(self, event: dict[str, Any]) -> None: ...


@dataclass
class Setup:
    agent: AgentConfig
    properties: dict[str, Any]
    history: list[tuple[str, str]]
    choices: list[ModelChoice]
    passages: list[dict[str, Any]]
    error_code: str = ""  # set when no model could be reached at all (e.g. no API key)


@dataclass
class Turn:
    """What every call of a turn sends: the system prompt, the tools, the history (which
    grows with the turn's tool calls)."""

    system: str
    tools: list[ToolDefinition]
    messages: list[ChatMessage]


@dataclass
class RunResult:
    run_id: uuid.UUID
    message_id: int | None
    status: str
    content: str
    input_tokens: int
    output_tokens: int
    cost: Decimal
    error_code: str = ""


class AgentRun:
    def __init__(
        self,
        *,
        group: Group,
        conversation: Conversation,
        user: User | None,
        sink: RunSink,
        run_id: uuid.UUID | None = None,
        configuration: GroupConfiguration | None = None,
    ) -> None:
        """`configuration`: the group's, as the caller has just read it (its version checked):
        the set-up reads no version of its own; with a conversation whose history is in
        memory, the run then sets up without a trip to a database thread (the
        OpenAI-compatible endpoint's first token comes that much sooner)."""
        self.group = group
        self._configuration = configuration
        self.conversation = conversation
        self.user = user
        self.sink = sink
        self.run_id = run_id or uuid.uuid4()
        self._wire_run_id = str(self.run_id)  # in every frame: made once, not per frame
        self._stop = asyncio.Event()
        self._seq = 0
        self._calls: list[MeteredCall] = []
        self._text: list[str] = []
        self._tool_log: list[dict[str, Any]] = []
        self._sources: list[dict[str, Any]] = []
        self._prices: dict[tuple[str, str], Prices] = {}
        self.message_id = uuid.uuid4()
        self._placeholder: asyncio.Future | None = None
        self._placed: Answer | None = None  # the answer's row, when prepare_now wrote it
        self.setup: Setup | None = None
        self._setup_error: Exception | None = None
        # The first call's budget hold, made on the set-up's trip (_hold_ahead), and the
        # turn it was made for; a refusal there is the first call's.
        self._ahead: MeteredCall | None = None
        self._ahead_refused: QuotaExceeded | None = None
        self._first_turn: Turn | None = None
        self.ended = False  # its final event was emitted
        self.finish_reason = ""  # the last provider call's ("stop", "length", ...), for the API

    # --- control ---------------------------------------------------------------

    def stop(self) -> None:
        """Ask the run to stop; it ends within one event-loop turn of the stream."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def emit(self, event: RunEvent) -> None:
        self._seq += 1
        await self.sink.emit(wire(event, run_id=self._wire_run_id, seq=self._seq))

    # --- the loop ----------------------------------------------------------------

    def prepare_now(
        self, *, place_answer: bool = False, configuration: GroupConfiguration | None = None
    ) -> None:
        """Set up on the caller's database thread (sync), right after the caller's own
        writes, so `execute` needs no trip of its own before `run.started`; what fails here
        fails the run in `execute`, as it would there. With `place_answer`, the answer's
        row (streaming, empty) is written on the same trip once the set-up has succeeded,
        not on a trip of its own at the first text; if that write fails, it is tried
        again there. `configuration`: as in __init__, when the caller read it since."""
        if configuration is not None:
            self._configuration = configuration
        try:
            self.setup = self._set_up()
        except Exception as error:
            self.setup, self._setup_error = None, error
            return
        if place_answer:
            try:
                self._placed = self._start_message()
            except Exception:
                logger.exception("run %s: its answer's row waits for its first text", self.run_id)

    @property
    def silent(self) -> bool:
        """Whether it has sent no event yet: a tab listening now hears it from `seq` 1."""
        return self._seq == 0

    async def announce(self) -> None:
        """`run.started`, once set up (prepare_now) and only once: its starter sends it
        right after its own notices (the question), in the same turn of the event loop,
        rather than the run's task a turn later. A set-up that failed says nothing here:
        `execute` ends the run with its error."""
        if self.setup is not None and self.silent:
            await self.emit(RunStarted(message_id=str(self.message_id)))

    async def execute(self) -> RunResult:
        try:
            if self._setup_error is not None:
                raise self._setup_error
            if self.setup is not None:  # set up by prepare_now
                pass
            elif self._configuration is not None and self.conversation.history_in_memory:
                self.setup = self._prepare()
            else:
                self.setup = await db_call(self._set_up)()
        except _AgentUnavailable:
            return await self._fail_before_start("agent_unavailable")
        except Exception:
            logger.exception("run %s could not start", self.run_id)
            return await self._fail_before_start("internal")
        setup = self.setup
        await self.announce()
        if setup.error_code:
            return await self._finish(AnswerStatus.ERROR, setup.error_code)
        try:
            setup.passages = await self._retrieve(setup)
        except Exception:
            logger.exception("run %s: knowledge search failed; answering without it", self.run_id)
        if setup.passages:
            self._sources = [self._source_item(p) for p in setup.passages]
            await self.emit(Sources(items=self._sources))
        try:
            status, error_code = await self._loop(setup)
        except Exception:
            logger.exception("run %s crashed", self.run_id)
            status, error_code = AnswerStatus.ERROR, "internal"
        return await self._finish(status, error_code)

    def _write_placeholder(self) -> asyncio.Future:
        """Insert the streaming message row, off the path to the first token (unless
        prepare_now placed it already)."""
        if self._placeholder is None:
            if self._placed is not None:
                self._placeholder = asyncio.get_running_loop().create_future()
                self._placeholder.set_result(self._placed)
            else:
                self._placeholder = asyncio.create_task(db_call(self._start_message)())
        return self._placeholder

    @staticmethod
    def _turn(setup: Setup) -> Turn:
        props = setup.properties
        system = system_prompt(props["systemPrompt"], setup.passages)
        tools = [
            ToolDefinition(spec.name, spec.description, spec.parameters)
            for name in props["tools"]
            if (spec := TOOLS.get(name)) is not None
        ]
        budget = history_budget(
            context_window=setup.choices[0].info.context_window,
            max_tokens=props["maxTokens"],
            system=system,
            tools=tools,
        )
        return Turn(system, tools, fit_history(setup.history, budget=budget))

    @staticmethod
    def _request(setup: Setup, turn: Turn, *, rounds: int) -> ChatRequest:
        """The turn's next call, after `rounds` rounds of tool calls (none offered past the
        agent's limit); its model is the choice's, set per try."""
        props = setup.properties
        return ChatRequest(
            model="",
            system=turn.system,
            messages=list(turn.messages),
            tools=turn.tools if rounds < props["maxConsecutiveToolCalls"] else [],
            temperature=props["temperature"],
            max_tokens=props["maxTokens"],
            timeout=float(props["requestTimeout"]),
        )

    async def _loop(self, setup: Setup) -> tuple[str, str]:
        props = setup.properties
        turn = self._first_turn
        if turn is None or setup.passages:  # (a turn held ahead has no passages)
            turn = self._turn(setup)
        conversation = turn.messages
        tool_run = ToolRun(
            group=self.group,
            user=self.user,
            agent_id=setup.agent.id,
            thread_id=self.conversation.thread_id,
            run_id=self.run_id,
            allowed=frozenset(props["tools"]),
            timeout=float(props["toolCallTimeout"]),
        )
        rounds = 0
        step = 0
        while True:
            request = self._request(setup, turn, rounds=rounds)
            offered = request.tools
            result = await self._call_with_policy(setup, request, step)
            self.finish_reason = result.finish
            step += 1
            if result.refused:
                return AnswerStatus.ERROR, result.refused
            if result.stopped:
                return AnswerStatus.STOPPED, ""
            if result.error is not None:
                return AnswerStatus.ERROR, result.error.code
            if not (result.tool_calls and offered):
                return AnswerStatus.COMPLETE, ""
            rounds += 1
            tool_run.step = step
            outcomes = await self._run_tools(result.tool_calls, tool_run)
            if outcomes is None:
                return AnswerStatus.STOPPED, ""
            conversation.append(
                ChatMessage("assistant", result.text, tool_calls=tuple(result.tool_calls))
            )
            conversation += [
                ChatMessage("tool", o.for_model(), tool_call_id=o.call.id) for o in outcomes
            ]

    # --- model calls -------------------------------------------------------------

    async def _call_with_policy(self, setup: Setup, request: ChatRequest, step: int) -> CallResult:
        """Retry retryable failures before the first token, then fall back to the next model."""
        attempts = max(1, settings.PARLEY_RETRY_ATTEMPTS)
        result = CallResult()
        for choice_index, choice in enumerate(setup.choices):
            request.model = choice.model
            for attempt in range(attempts):
                number = choice_index * attempts + attempt
                result = await self._call_once(setup, choice, request, step, number)
                if result.error is None or result.produced or not result.error.retryable:
                    return result
                if attempt + 1 < attempts and await self._pause(attempt, result.error):
                    result.stopped, result.error = True, None
                    return result
            if result.error is None or not result.error.retryable:
                break
            logger.warning(
                "run %s: %s keeps failing (%s)", self.run_id, choice.model, result.error.code
            )
        return result

    async def _pause(self, attempt: int, error: ProviderError) -> bool:
        """Back off before a retry; True when a stop arrived meanwhile."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=backoff_delay(attempt, error))
        except TimeoutError:
            return False
        return True

    async def _call_once(
        self,
        setup: Setup,
        choice: ModelChoice,
        request: ChatRequest,
        step: int,
        attempt: int,
    ) -> CallResult:
        """Stream one provider call, metered (billing.metering) whatever its end; a stop
        cancels it where it stands."""
        result = CallResult()
        if self._stop.is_set():
            result.stopped = True
            return result
        info = choice.info
        call = self._metered_call(setup, choice, step, attempt)
        try:
            held = self._take_ahead(call)
            async with metered(
                call,
                hold=None if held else self._hold(info, request),
                prices=lambda: self._price(info),
            ):
                self._calls.append(call)
                reported = await self._stream(choice.endpoint, request, call, result)
                call.usage = measured_usage(request, result, reported)
                if result.stopped:
                    call.stop()
                elif result.error is not None:
                    call.fail(result.error.code)
                if result.error is None and not result.tool_calls:
                    call.defer()  # the turn ends here: its row goes with the answer
        except QuotaExceeded as refusal:
            result.refused = refusal.code
        return result

    async def _stream(
        self, endpoint: Endpoint, request: ChatRequest, call: MeteredCall, result: CallResult
    ) -> UsageReport:
        """Read the provider's stream into `result`, sending text in frames, until it ends or
        a stop arrives; what the provider reported of its usage."""
        reported = UsageReport()
        texts: list[str] = []
        # A stop never cuts an emit in half: text is kept iff it was sent, and it is all
        # sent (frames drain on every ending), so what streamed is what is kept.
        emitting = asyncio.Lock()

        async def send(text: str) -> None:
            texts.append(text)
            self._text.append(text)
            await self.emit(Delta(text=text))
            self._write_placeholder()

        frames = DeltaFrames(send, interval=settings.PARLEY_STREAM_FRAME_MS / 1000, lock=emitting)

        async def read() -> None:
            nonlocal reported
            async for event in chat_provider(endpoint).stream(request):
                result.streamed = True
                if isinstance(event, TextDelta):
                    call.first_token()
                    text = storable_text(event.text)  # a model's NUL or lone surrogate
                    if text:
                        await frames.add(text)
                elif isinstance(event, ToolCallReady):
                    result.produced = True
                    result.tool_calls.append(event.call)
                elif isinstance(event, UsageReport):
                    reported = merged_report(reported, event)
                elif isinstance(event, Finished):
                    result.finish = event.reason

        async def consume() -> None:
            try:
                await read()
            except Exception:
                await frames.drain()
                raise
            await frames.drain()

        consumer = asyncio.create_task(consume())
        stop_waiter = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait({consumer, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
        if consumer in done:
            stop_waiter.cancel()
            error = consumer.exception()
            if error is not None:
                result.error = (
                    error
                    if isinstance(error, ProviderError)
                    else ProviderError(
                        "provider_unavailable", f"Unexpected provider failure: {error!r}"
                    )
                )
        else:
            result.stopped = True
            async with emitting:
                try:
                    await frames.drain_locked()
                except Exception:  # the call is still metered; unsent text is not kept
                    logger.exception("run %s: the frame before the stop failed", self.run_id)
                finally:
                    consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ProviderError):
                await consumer
        result.text = "".join(texts)
        result.produced = result.produced or bool(result.text)
        return reported

    def _metered_call(
        self, setup: Setup, choice: ModelChoice, step: int, attempt: int
    ) -> MeteredCall:
        return MeteredCall(
            group=self.group,
            purpose=AICall.Purpose.CHAT,
            provider=choice.info.provider,
            model=choice.model,
            call_id=uuid.uuid5(LEDGER_NAMESPACE, f"{self.run_id}:{step}:{attempt}"),
            user=self.user,
            agent_id=setup.agent.id,
            thread_id=self.conversation.thread_id,
            run_id=self.run_id,
            step=step,
            attempt=attempt,
        )

    def _hold_ahead(self, setup: Setup) -> None:
        """Hold the first call's budget on the set-up's own trip to the database, not on a
        trip of its own between `run.started` and the provider's first token: when the
        group has a budget and the first request is known here (no knowledge search adds
        to its prompt). The same hold the call would make; a refusal is kept for the call,
        which ends the run with it, and a hold the run never uses is given back when the
        run settles."""
        props = setup.properties
        if setup.error_code or props["ragEnabled"] or self._stop.is_set():
            return
        if unbudgeted(self.group):
            return
        choice = setup.choices[0]
        turn = self._turn(setup)
        request = self._request(setup, turn, rounds=0)
        request.model = choice.model
        call = self._metered_call(setup, choice, step=0, attempt=0)
        prices, worst = self._hold(choice.info, request)
        try:
            call.hold(prices=prices, worst=worst)
        except QuotaExceeded as refusal:
            self._ahead_refused = refusal
        except Exception:  # the call holds it itself, as without this
            logger.exception("run %s: the first call's hold waits for the call", self.run_id)
            return
        self._ahead, self._first_turn = call, turn

    def _take_ahead(self, call: MeteredCall) -> bool:
        """Whether the call's hold was made ahead (_hold_ahead): its reservation is the
        call's now. Raises the refusal made there."""
        ahead, refused = self._ahead, self._ahead_refused
        if ahead is None or ahead.id != call.id:
            return False
        self._ahead = self._ahead_refused = None
        if refused is not None:
            raise refused
        call.reservation = ahead.reservation
        return True

    def _price(self, info: catalog.ModelInfo) -> Prices:
        key = (info.provider, info.model)
        if key not in self._prices:
            self._prices[key] = catalog.prices_for(info)
        return self._prices[key]

    def _hold(self, info: catalog.ModelInfo, request: ChatRequest) -> Hold:
        """What a call holds against the budget: its prompt and all the output it may, at
        the catalog's list price, or the deployment's override when this run has already
        read it and it is higher: no price query on the way to the first token."""
        listed, known = catalog.list_prices(info), self._prices.get((info.provider, info.model))
        if known is not None:
            listed = Prices(
                max(listed.input, known.input),
                max(listed.output, known.output),
                max(listed.cached_input, known.cached_input),
            )
        return listed, worst_case(request)

    @property
    def _entries(self) -> list[LedgerEntry]:
        return [call.entry for call in self._calls if call.entry is not None]

    def _usage(self) -> dict[str, Any]:
        """The run's calls so far, as the answer keeps them (their rows made: see `_finish`)."""
        entries = self._entries
        return {
            "input": sum(e.usage.input_tokens for e in entries),
            "output": sum(e.usage.output_tokens for e in entries),
            "cost": str(sum((e.cost for e in entries), Decimal(0))),
            "calls": len(entries),
        }

    def _settle_all(self) -> None:
        """Write the rows whose write failed (a replayed row is skipped) and give back every
        hold still open (a hold made ahead for a call never made too). Nothing to do, and
        no lock taken, when every call was recorded."""
        calls = self._calls if self._ahead is None else [*self._calls, self._ahead]
        settle(calls, group=self.group)

    # --- tools -----------------------------------------------------------------------

    async def _run_tools(
        self, calls: list[ToolCallRequest], tool_run: ToolRun
    ) -> list[ToolOutcome] | None:
        """Run one turn's tool calls; None when a stop arrived before they finished."""
        for call in calls:
            await self.emit(
                ToolStarted(
                    call_id=call.id,
                    name=call.name,
                    arguments=_parse_arguments(call.arguments),
                )
            )
        work = asyncio.create_task(run_tool_calls(calls, tool_run))
        stop_waiter = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait({work, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
        if work not in done:
            # The calls go on in the workers and keep their records; the answer stops here.
            work.add_done_callback(lambda task: task.exception())
            return None
        stop_waiter.cancel()
        outcomes = work.result()
        for outcome in outcomes:
            if outcome.ok and outcome.call.name == SEARCH_TOOL:
                await self._number_sources(outcome)
            self._tool_log.append(
                {
                    "id": outcome.call.id,
                    "name": outcome.call.name,
                    "arguments": outcome.arguments,
                    "ok": outcome.ok,
                    "summary": outcome.summary,
                }
            )
            await self.emit(
                ToolFinished(
                    call_id=outcome.call.id,
                    name=outcome.call.name,
                    ok=outcome.ok,
                    summary=outcome.summary,
                )
            )
        return outcomes

    async def _number_sources(self, outcome: ToolOutcome) -> None:
        """Give each passage a run-wide number, so [n] in the answer names one source."""
        results = (outcome.result or {}).get("results", [])
        if not results:
            return
        start = len(self._sources)
        for offset, passage in enumerate(results, start=1):
            passage["n"] = start + offset
        new = [self._source_item(p) for p in results]
        self._sources += new
        await self.emit(Sources(items=new))

    @staticmethod
    def _source_item(passage: dict[str, Any]) -> dict[str, Any]:
        return {
            "n": passage["n"],
            "knowledge_id": passage["knowledge_id"],
            "title": passage["title"],
            "score": passage.get("score"),
        }

    # --- database edges ------------------------------------------------------------------

    def _set_up(self) -> Setup:
        """The set-up's trip to the database: the set-up, and the first call's hold."""
        setup = self._prepare()
        self._hold_ahead(setup)
        return setup

    def _prepare(self) -> Setup:
        configuration = self._configuration
        if configuration is None:
            configuration = group_configuration(self.group)
        agent = configuration.agents.get(self.conversation.agent_id)
        if agent is None or not agent.active:
            raise _AgentUnavailable
        properties = agent.properties
        history = self.conversation.history()
        with group_scope(self.group):
            choices: list[ModelChoice] = []
            error_code = ""
            wanted = [(properties["provider"], properties["model"])]
            if properties["fallbackProvider"] and properties["fallbackModel"]:
                wanted.append((properties["fallbackProvider"], properties["fallbackModel"]))
            for provider, model in wanted:
                try:
                    choices.append(model_choice(provider, model, configuration.credentials))
                except ProviderError as error:
                    error_code = error_code or error.code
            if choices:
                error_code = ""
        return Setup(agent, properties, history, choices, [], error_code)

    async def _retrieve(self, setup: Setup) -> list[dict[str, Any]]:
        """Knowledge for the user's question, when the agent adds it to every turn."""
        props, history = setup.properties, setup.history
        if not (props["ragEnabled"] and history and history[-1][0] == USER):
            return []
        hits = await aretrieve(
            group=self.group,
            query=history[-1][1],
            top_k=props["ragTopK"],
            embedding_model=agent_embedding_model(self.group, props),
            source_ids=props.get("knowledgeSources") or None,
            who=Who(
                user_id=getattr(self.user, "pk", None),
                agent_id=setup.agent.id,
                thread_id=self.conversation.thread_id,
                run_id=self.run_id,
            ),
        )
        return [
            {
                "n": n,
                "knowledge_id": h.knowledge_id,
                "title": h.citation_title,
                "content": h.content,
                "score": round(h.score, 6),
            }
            for n, h in enumerate(hits, start=1)
        ]

    def _start_message(self) -> Answer:
        return self.conversation.start_answer(run_id=self.run_id, message_id=self.message_id)

    async def _finish(self, status: str, error_code: str) -> RunResult:
        """Save the answer and tell every tab how the run ended. An answer the database will
        not take as it ended is saved as failed, its text kept: the run ends now either way,
        never left streaming for the sweep."""
        content = "".join(self._text)
        try:
            message = await self._write_placeholder()
        except Exception:
            logger.exception("run %s: its answer's row could not be written", self.run_id)
            await db_call(self._settle_quietly)()
            return await self._fail_before_start("internal")

        def write(status: str, error_code: str) -> None:
            price_deferred(self._calls)  # the last call's row is written with the answer
            self.conversation.finish_answer(
                message,
                status=status,
                content=content,
                actor=self.user,
                tool_calls=self._tool_log,
                sources=self._sources,
                usage=self._usage(),
                error_code=error_code,
                ledger_write=self._settle_all,
            )

        try:
            await _finishing(write, status, error_code)
        except Exception:
            logger.exception("run %s: its answer could not be saved as it ended", self.run_id)
            status, error_code = AnswerStatus.ERROR, "internal"
            await db_call(self._save_failed)(write, message, content)
        self.ended = True
        usage = self._usage()
        if status == AnswerStatus.COMPLETE:
            await self.emit(
                RunCompleted(
                    message_id=str(message.pk),
                    usage={"input": usage["input"], "output": usage["output"]},
                    cost=usage["cost"],
                )
            )
        elif status == AnswerStatus.STOPPED:
            await self.emit(RunStopped(message_id=str(message.pk)))
        else:
            await self.emit(
                RunFailed(
                    code=error_code,
                    message=sentence_for(error_code),
                    message_id=str(message.pk),
                )
            )
        return RunResult(
            self.run_id,
            message.pk,
            status,
            content,
            usage["input"],
            usage["output"],
            Decimal(usage["cost"]),
            error_code,
        )

    def _save_failed(
        self, write: Callable[[str, str], None], message: Answer, content: str
    ) -> None:
        """The answer as failed: through its service (answer, ledger and audit at once), else
        its row alone and then the ledger alone, so that whatever refused the whole still
        leaves no answer streaming and no call unmetered."""
        try:
            write(AnswerStatus.ERROR, "internal")
            return
        except Exception:
            logger.exception("run %s: its failed answer could not be saved whole", self.run_id)
        try:
            self.conversation.fail_answer(message, content=content)
        except Exception:
            logger.exception("run %s: its answer stays streaming for the sweep", self.run_id)
        self._settle_quietly()

    def _settle_quietly(self) -> None:
        try:
            self._settle_all()
        except Exception:
            logger.exception("run %s: its ledger rows could not be written", self.run_id)

    async def fail(self) -> None:
        """End a run that broke outside its own handling: every tab hears that it failed."""
        if not self.ended:
            await self._fail_before_start("internal")

    async def _fail_before_start(self, code: str) -> RunResult:
        self.ended = True
        await self.emit(RunFailed(code=code, message=sentence_for(code)))
        return RunResult(self.run_id, None, AnswerStatus.ERROR, "", 0, 0, Decimal(0), code)


class _AgentUnavailable(Exception):
    pass


def _parse_arguments(raw: str) -> Any:
    try:
        return json.loads(raw or "{}")
    except json.JSONDecodeError:
        return raw
