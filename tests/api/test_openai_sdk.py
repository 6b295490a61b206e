"""The OpenAI-compatible endpoint as an agent builder meets it: the official openai SDK, sync
and async, talking HTTP to a real daphne that serves the test database, with the provider
simulator behind it. Nothing here reaches into the server; what it stored is read back
from the database."""

import asyncio
import time
from decimal import Decimal

import openai
import pytest
from django.db.models import Sum

from billing.models import AICall
from chat import services as chat_services
from chat.models import Message
from ontology import services
from ontology.events import EventType
from ontology.models import Event, Thing
from ontology.scoping import group_scope
from ontology.tokens import token_create, token_revoke
from tests.conftest import make_tenant, set_plan
from tests.servers import daphne_servers

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("clear_cache"),
]

REPLY = "Refunds take fourteen days, counted from the day we receive the parcel."
SLOW = "sim-gpt@slow;ttft_ms=0;tps=20;words=200"


@pytest.fixture(scope="module")
def server(django_db_setup, simulator):
    """One daphne for the module; OpenAI's own API (embeddings) is the simulator too."""
    with daphne_servers(
        1,
        simulator_url=simulator.url,
        env={
            "PARLEY_STREAM_FRAME_MS": "0",
            "OPENAI_BASE_URL": simulator.openai_base_url,
            "OPENAI_API_KEY": "sk-test",
        },
    ) as urls:
        yield urls[0] + "/v1"


class World:
    """Tenant alpha with a simulated agent and a member's token; tenant bravo beside it."""

    def __init__(self, model: str = f'sim-gpt@text;reply="{REPLY}";tps=400', **properties) -> None:
        set_plan("free", message_rate_user="1000/d", message_rate_group="1000/d")
        self.alpha, self.bravo = make_tenant("alpha"), make_tenant("bravo")
        self.agent = self.simulated_agent(self.alpha, "Help Desk", model, **properties)
        self.other_agent = self.simulated_agent(self.bravo, "Help Desk", model)
        self.token, self.secret = token_create(
            group=self.alpha.group,
            user=self.alpha.member,
            name="sdk",
            scopes=["chat", "read"],
            actor=self.alpha.member,
        )

    @staticmethod
    def simulated_agent(tenant, name: str, model: str, **properties) -> Thing:
        return services.thing_create(
            group=tenant.group,
            type=Thing.Type.AGENT,
            name=name,
            actor=tenant.owner,
            properties={"provider": "simulator", "model": model, **properties},
        )

    @property
    def model(self) -> str:
        return f"help-desk-{self.agent.pk}"

    def client(self, base_url: str, **options) -> openai.OpenAI:
        return openai.OpenAI(api_key=self.secret, base_url=base_url, max_retries=0, **options)

    def async_client(self, base_url: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=self.secret, base_url=base_url, max_retries=0)

    def ledger(self, run_id: str, purpose: str = AICall.Purpose.CHAT) -> dict:
        with group_scope(self.alpha.group):
            return AICall.objects.filter(run_id=run_id, purpose=purpose).aggregate(
                input=Sum("input_tokens"), output=Sum("output_tokens")
            )


def usage_matches(usage, ledger: dict) -> bool:
    return (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        ledger["input"],
        ledger["output"],
        ledger["input"] + ledger["output"],
    ) and ledger["input"] > 0


QUESTION = [
    {"role": "system", "content": "You are a pirate."},  # ignored: the agent's prompt rules
    {"role": "user", "content": "How long do refunds take?"},
]


def test_models_are_the_tokens_groups_active_agents_and_no_one_elses(server):
    world = World()
    client = world.client(server)
    models = client.models.list()
    assert sorted(m.id for m in models.data) == sorted(
        [f"alpha-agent-{world.alpha.agent.pk}", world.model]
    )
    assert {m.owned_by for m in models.data} == {"alpha"}
    assert client.models.retrieve(world.model).id == world.model
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(f"help-desk-{world.other_agent.pk}")  # bravo's agent
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=f"help-desk-{world.other_agent.pk}", messages=QUESTION)


def test_a_completion_is_the_agents_answer_metered_and_audited_but_not_stored(server):
    world = World()
    completion = world.client(server).chat.completions.create(model=world.model, messages=QUESTION)
    assert completion.object == "chat.completion" and completion.model == world.model
    choice = completion.choices[0]
    assert (choice.message.role, choice.message.content) == ("assistant", REPLY)
    assert choice.finish_reason == "stop"
    run_id = completion.model_extra["parley"]["run_id"]
    assert usage_matches(completion.usage, world.ledger(run_id))
    with group_scope(world.alpha.group):
        assert not Message.objects.exists()  # stateless: no thread, no messages
        event = Event.objects.get(type=EventType.API_COMPLETION)
        assert event.actor == world.alpha.member and event.target_id == str(world.token.pk)
        assert event.metadata["run_id"] == run_id and event.metadata["status"] == "complete"
        assert AICall.objects.get(run_id=run_id).thread_id is None


def test_a_stream_sends_the_role_the_text_the_finish_and_the_exact_usage(server):
    world = World()
    stream = world.client(server).chat.completions.create(
        model=world.model,
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []  # the usage chunk comes last
    run_id = chunks[0].model_extra["parley"]["run_id"]
    assert usage_matches(chunks[-1].usage, world.ledger(run_id))


def test_an_answer_cut_at_the_agents_token_limit_finishes_with_length(server):
    world = World(model="sim-gpt@text;words=80", maxTokens=5)
    client = world.client(server)
    completion = client.chat.completions.create(model=world.model, messages=QUESTION)
    assert completion.choices[0].finish_reason == "length"
    stream = client.chat.completions.create(model=world.model, messages=QUESTION, stream=True)
    assert [c.choices[0].finish_reason for c in stream if c.choices][-1] == "length"


def test_the_async_client_streams_and_completes_alike(server):
    world = World()

    async def talk():
        async with world.async_client(server) as client:
            whole = await client.chat.completions.create(model=world.model, messages=QUESTION)
            stream = await client.chat.completions.create(
                model=world.model,
                messages=QUESTION,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            return whole, chunks

    whole, chunks = asyncio.run(talk())
    assert whole.choices[0].message.content == REPLY
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    run_id = chunks[0].model_extra["parley"]["run_id"]
    assert usage_matches(chunks[-1].usage, world.ledger(run_id))


def test_the_answer_cites_the_knowledge_it_was_given(server):
    world = World(ragEnabled=True)
    from agents.models import Knowledge, KnowledgeSource

    with group_scope(world.alpha.group):
        source = KnowledgeSource.objects.create(
            group=world.alpha.group,
            kind="text",
            title="Returns policy",
            content_hash="1" * 64,
            status=KnowledgeSource.Status.READY,
            chunk_count=1,
        )
        chunk = Knowledge.objects.create(
            group=world.alpha.group,
            source=source,
            title="Returns policy",
            content="Refunds take fourteen days after the parcel arrives.",
        )
    completion = world.client(server).chat.completions.create(model=world.model, messages=QUESTION)
    sources = completion.model_extra["parley"]["sources"]
    assert [(s["n"], s["knowledge_id"], s["title"]) for s in sources] == [
        (1, chunk.pk, "Returns policy")
    ]


def test_a_revoked_token_is_refused_as_openai_refuses_a_bad_key(server):
    world = World()
    token_revoke(token=world.token, actor=world.alpha.member)
    with pytest.raises(openai.AuthenticationError):
        world.client(server).chat.completions.create(model=world.model, messages=QUESTION)
    with pytest.raises(openai.AuthenticationError):
        world.client(server).models.list()


def test_the_message_rate_limit_answers_429_with_retry_after(server):
    world = World()
    set_plan("free", message_rate_user="1/m", message_rate_group="1000/d")
    client = world.client(server)
    client.chat.completions.create(model=world.model, messages=QUESTION)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=world.model, messages=QUESTION, stream=True)
    assert 0 < int(refused.value.response.headers["Retry-After"]) <= 60
    assert refused.value.body["type"] == "rate_limit_error"


def test_a_used_up_budget_is_a_402_before_any_stream_starts(server):
    world = World()
    set_plan("free", monthly_budget=Decimal("0.000001"))
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as refused:
            world.client(server).chat.completions.create(
                model=world.model, messages=QUESTION, stream=stream
            )
        assert refused.value.status_code == 402
        assert refused.value.body["code"] == "quota_exceeded"


def test_a_provider_failure_before_the_first_token_has_its_status(server):
    world = World(model="sim-gpt@context_length")
    with pytest.raises(openai.BadRequestError) as refused:
        world.client(server).chat.completions.create(
            model=world.model, messages=QUESTION, stream=True
        )
    assert refused.value.body["code"] == "context_length"


def test_a_failure_after_the_text_began_ends_the_stream_with_an_error(server):
    world = World(model="sim-gpt@disconnect;words=30")
    stream = world.client(server).chat.completions.create(
        model=world.model, messages=QUESTION, stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as failed:
        for chunk in stream:
            received.append(chunk)
    assert any(c.choices and c.choices[0].delta.content for c in received)
    assert failed.value.body["code"] == "provider_unavailable"


def test_a_client_that_leaves_mid_stream_stops_the_run_and_it_is_metered(server):
    world = World(model=SLOW)
    stream = world.client(server).chat.completions.create(
        model=world.model, messages=QUESTION, stream=True
    )
    with stream:
        first = next(iter(stream))
        run_id = first.model_extra["parley"]["run_id"]
        assert next(iter(stream)).choices[0].delta.content
    deadline = time.monotonic() + 15
    while True:  # the server learns of the closed connection in its own time
        with group_scope(world.alpha.group):
            calls = list(AICall.objects.filter(run_id=run_id).values_list("status", flat=True))
            audited = Event.objects.filter(type=EventType.API_COMPLETION).first()
        if calls and audited is not None:
            break
        assert time.monotonic() < deadline, "the run did not end after the client left"
        time.sleep(0.05)
    assert calls == [AICall.Status.STOPPED]
    assert audited.metadata["status"] == "stopped"


def test_a_parley_thread_gets_the_question_and_the_answer(server):
    world = World()
    with group_scope(world.alpha.group):
        thread = chat_services.thread_create(
            group=world.alpha.group, agent=world.agent, user=world.alpha.member, title="Refunds"
        )
        others = chat_services.thread_create(
            group=world.alpha.group, agent=world.agent, user=world.alpha.owner, title="Mine"
        )
    client = world.client(server)
    completion = client.chat.completions.create(
        model=world.model, messages=QUESTION, extra_headers={"X-Parley-Thread": str(thread.pk)}
    )
    assert completion.choices[0].message.content == REPLY
    with group_scope(world.alpha.group):
        stored = list(Message.objects.filter(thread=thread).order_by("created_at"))
    assert [(m.role, m.content, m.status) for m in stored] == [
        ("user", "How long do refunds take?", "complete"),
        ("assistant", REPLY, "complete"),
    ]
    assert str(stored[1].run_id) == completion.model_extra["parley"]["run_id"]
    stream = client.chat.completions.create(
        model=world.model,
        messages=QUESTION,
        stream=True,
        extra_headers={"X-Parley-Thread": str(thread.pk)},
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY
    for hidden in (others.pk, 999_999_999, "abc"):  # another's thread, a missing one, junk
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model=world.model, messages=QUESTION, extra_headers={"X-Parley-Thread": str(hidden)}
            )


def test_embeddings_are_the_groups_models_vectors_with_a_ledger_row(server):
    world = World()
    client = world.client(server)
    result = client.embeddings.create(model="text-embedding-3-small", input=["refunds", "pets"])
    assert [len(item.embedding) for item in result.data] == [1536, 1536]
    assert result.model == "text-embedding-3-small"
    floats = client.embeddings.create(model="any", input="refunds", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(result.data[0].embedding, abs=1e-6)
    with group_scope(world.alpha.group):
        rows = list(AICall.objects.filter(purpose=AICall.Purpose.EMBEDDING).order_by("created_at"))
    assert [(r.model, r.user_id, r.status) for r in rows] == [
        ("text-embedding-3-small", world.alpha.member.pk, "ok")
    ] * 2
    assert rows[0].input_tokens == result.usage.prompt_tokens > 0
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="any", input=[[1, 2, 3]])
