"""The chat socket opened by a program with an API token: no Origin or cookie needed, the
same protocol and close codes, the token's group only, writes only with the chat scope,
and a token that ends closes its open sockets with 4401."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from billing.models import AICall
from chat import services as chat_services
from chat.models import Message
from ontology import services, tokens
from ontology.models import Membership
from ontology.scoping import group_scope
from tests.chat.test_consumers import TIMEOUT, application, chat_setup, frames_until, send, text_of
from tests.conftest import make_tenant

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache"),
]


@database_sync_to_async
def token_for(tenant, user=None, scopes=("chat", "read")):
    token, secret = tokens.token_create(
        group=tenant.group, user=user or tenant.member, name="bot", scopes=scopes, actor=None
    )
    return token, secret


async def token_socket(thread_id, secret, *, origin=None):
    headers = [(b"authorization", f"Bearer {secret}".encode()), (b"host", b"testserver")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(application(), f"/ws/threads/{thread_id}/", headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    return communicator, connected


async def closed_with(communicator):
    output = await communicator.receive_output(timeout=TIMEOUT)
    assert output["type"] == "websocket.close", output
    return output["code"]


async def test_a_program_chats_with_only_a_token_and_is_metered_like_a_person(sim):
    tenant, thread = await chat_setup()
    _, secret = await token_for(tenant)
    tab, connected = await token_socket(thread.pk, secret)  # no Origin, no cookie
    assert connected
    await send(tab, type="message.send", content="Hello from a script", client_id="s1")
    frames = await frames_until(tab, "run.completed")
    assert frames[0]["message"]["content"] == "Hello from a script"
    assert text_of(frames)

    @database_sync_to_async
    def ledger():
        with group_scope(tenant.group):
            return list(AICall.objects.values_list("user_id", "output_tokens"))

    ((user_id, output_tokens),) = await ledger()
    assert user_id == tenant.member.pk and output_tokens == frames[-1]["usage"]["output"]
    await tab.disconnect()


async def test_a_bad_token_closes_like_no_session_even_from_the_sites_origin(sim):
    _, thread = await chat_setup()
    tab, _ = await token_socket(thread.pk, "prl_" + "0" * 40, origin="http://testserver")
    assert await closed_with(tab) == 4401
    tab, _ = await token_socket(thread.pk, "not-a-token")
    assert await closed_with(tab) == 4401


async def test_a_token_reaches_only_its_own_groups_threads_as_missing_ones_look(sim):
    tenant, _ = await chat_setup()

    @database_sync_to_async
    def second_group_thread():
        """The member also belongs to another group, with a thread of their own there."""
        other = make_tenant("globex")
        services.membership_create(
            group=other.group, user=tenant.member, role=Membership.Role.MEMBER, actor=other.owner
        )
        with group_scope(other.group):
            return chat_services.thread_create(
                group=other.group, agent=other.agent, user=tenant.member
            )

    elsewhere = await second_group_thread()
    _, secret = await token_for(tenant)
    for thread_id in (elsewhere.pk, 999_999):
        tab, _ = await token_socket(thread_id, secret)
        assert await closed_with(tab) == 4404


async def test_a_read_token_follows_but_cannot_write(sim):
    tenant, thread = await chat_setup()
    _, secret = await token_for(tenant, scopes=["read"])
    tab, connected = await token_socket(thread.pk, secret)
    assert connected
    for frame in ({"type": "message.send", "content": "hi"}, {"type": "run.stop"}):
        await send(tab, **frame)
        error = await tab.receive_json_from(timeout=TIMEOUT)
        assert (error["type"], error["code"]) == ("error", "insufficient_scope")
    await tab.disconnect()


@pytest.mark.parametrize("ending", ["revoke", "remove_member", "deactivate"])
async def test_an_ended_token_closes_its_open_socket_with_4401(sim, ending):
    tenant, thread = await chat_setup()
    token, secret = await token_for(tenant)
    tab, connected = await token_socket(thread.pk, secret)
    assert connected
    await send(tab, type="no.such.frame")  # answered once connect() has joined every group
    assert (await tab.receive_json_from(timeout=TIMEOUT))["code"] == "unknown_type"

    @database_sync_to_async
    def end_it():
        if ending == "revoke":
            tokens.token_revoke(token=token, actor=tenant.owner)
        elif ending == "remove_member":
            with group_scope(tenant.group):
                membership = Membership.objects.get(user=tenant.member)
            services.membership_delete(membership=membership, actor=tenant.owner)
        else:
            tenant.member.is_active = False
            tenant.member.save()

    await end_it()
    assert await closed_with(tab) == 4401


async def test_a_write_checks_the_token_even_when_the_close_message_was_lost(sim):
    tenant, thread = await chat_setup()
    token, secret = await token_for(tenant)
    tab, _ = await token_socket(thread.pk, secret)

    @database_sync_to_async
    def revoke_quietly():
        """Revoked behind the platform's back: no message reaches the socket."""
        with group_scope(tenant.group):
            type(token).objects.filter(pk=token.pk).update(revoked_at=token.created_at)

    await revoke_quietly()
    await send(tab, type="message.send", content="still here?")
    assert await closed_with(tab) == 4401

    @database_sync_to_async
    def nothing_stored():
        with group_scope(tenant.group):
            return not Message.objects.filter(thread=thread).exists()

    assert await nothing_stored()
