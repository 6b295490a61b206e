"""A run whose process died mid-call: its call is metered as estimated and its holds go back."""

import uuid
from decimal import Decimal

import pytest

from agents.engine.interrupted import LostRun, meter_interrupted_run
from agents.tokens import count_tokens
from billing.models import AICall, BudgetReservation
from billing.services import budget_reserve
from ontology import services
from ontology.models import Thing
from ontology.scoping import group_scope

pytestmark = pytest.mark.django_db


def lost_run(tenant, run_id, streamed="Economy class for flights under six hours"):
    agent = services.thing_create(
        group=tenant.group,
        type=Thing.Type.AGENT,
        name="Sim",
        actor=tenant.owner,
        properties={"provider": "simulator", "model": "sim-gpt@slow", "systemPrompt": "Be brief."},
    )
    return LostRun(
        group=tenant.group,
        run_id=run_id,
        thread_id=None,
        agent_id=agent.pk,
        user_id=tenant.member.pk,
        history=["What is our flight policy?"],
        streamed=streamed,
    )


def test_the_dead_call_is_metered_as_estimated_once_and_its_hold_is_released(tenant_a):
    run_id = uuid.uuid4()
    hold = budget_reserve(group=tenant_a.group, cost=Decimal("0.50"), tokens=20_000, run_id=run_id)
    assert hold is not None
    run = lost_run(tenant_a, run_id)
    row = meter_interrupted_run(run)
    assert (row.status, row.error_code, row.usage_exact) == ("failed", "interrupted", False)
    assert row.output_tokens == count_tokens(run.streamed)
    assert row.input_tokens > count_tokens("What is our flight policy?")
    assert (row.provider, row.model, row.user_id) == ("simulator", "sim-gpt@slow", run.user_id)
    assert row.cost > 0
    with group_scope(tenant_a.group):
        assert not BudgetReservation.objects.filter(run_id=run_id).exists()
        meter_interrupted_run(run)  # a second sweep
        assert AICall.objects.filter(run_id=run_id).count() == 1


def test_a_run_with_no_call_in_flight_writes_nothing(tenant_a):
    run_id = uuid.uuid4()
    run = lost_run(tenant_a, run_id, streamed="")
    assert meter_interrupted_run(run) is None  # no hold, no text: no call was in flight
    with group_scope(tenant_a.group):
        assert not AICall.objects.filter(run_id=run_id).exists()
