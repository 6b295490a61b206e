import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.apps import apps
from django.db import models

from agents.models import Agent
from ontology import services
from ontology.models import Event, Group, Membership, Thing
from ontology.scoping import (
    ScopeError,
    TenantManager,
    active_group,
    group_scope,
    scopes_disabled,
)


def test_every_model_with_a_group_foreign_key_is_tenant_owned():
    offenders = []
    for model in apps.get_models():
        if model is Group:
            continue
        group_fks = [
            f
            for f in model._meta.get_fields()
            if isinstance(f, models.ForeignKey) and f.remote_field.model is Group
        ]
        if not group_fks:
            continue
        has_direct_group = any(f.name == "group" for f in group_fks)
        if not has_direct_group or not isinstance(model._default_manager, TenantManager):
            offenders.append(model._meta.label)
    assert offenders == []


@pytest.mark.parametrize(
    "query",
    [
        lambda: list(Thing.objects.all()),
        lambda: Thing.objects.filter(name="x").count(),
        lambda: Thing.objects.exists(),
        lambda: Thing.objects.get(pk=1),
        lambda: Thing.objects.first(),
        lambda: Thing.objects.update(name="x"),
        lambda: Thing.objects.all().delete(),
        lambda: list(Agent.objects.values_list("name", flat=True)),
        lambda: list(Membership.objects.all()),
        lambda: list(Event.objects.all()),
    ],
)
def test_tenant_managers_refuse_to_run_without_an_active_group(tenant_a, query):
    with pytest.raises(ScopeError, match="no active group"):
        query()


def test_a_scope_shows_only_its_own_groups_rows(tenant_a, tenant_b):
    with group_scope(tenant_a.group):
        assert list(Agent.objects.values_list("name", flat=True)) == ["Alpha Agent"]
        assert not Thing.objects.filter(pk=tenant_b.agent.pk).exists()
        assert {m.user for m in Membership.objects.all()} == {tenant_a.owner, tenant_a.member}
        # Even naming the other group explicitly finds nothing.
        assert not Thing.objects.filter(group=tenant_b.group).exists()


def test_the_escape_hatch_returns_every_tenant(tenant_a, tenant_b):
    with scopes_disabled():
        assert Agent.objects.count() == 2


def test_writing_to_another_group_inside_a_scope_is_refused(tenant_a, tenant_b):
    with group_scope(tenant_a.group), pytest.raises(ScopeError):
        services.thing_create(
            group=tenant_b.group, type="task", name="sneaky", actor=tenant_a.owner
        )
    with scopes_disabled():
        assert not Thing.objects.filter(name="sneaky").exists()


async def test_the_scope_follows_sync_to_async_and_tasks():
    group = Group(pk=42, name="x", slug="x")
    with group_scope(group):
        assert await sync_to_async(active_group)() is group
        assert await asyncio.create_task(_active_group_async()) is group
    assert active_group() is None
    assert await sync_to_async(active_group)() is None


async def _active_group_async():
    return active_group()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("thread_connections")
async def test_scoped_queries_work_from_async_code():
    tenant_a = await database_sync_to_async(_make_two_tenants)()
    with group_scope(tenant_a.group):
        names = await database_sync_to_async(
            lambda: list(Agent.objects.values_list("name", flat=True))
        )()
        assert names == ["Alpha Agent"]
        assert await Agent.objects.acount() == 1
    with pytest.raises(ScopeError):
        await Agent.objects.acount()


def _agent_names():
    return list(Agent.objects.values_list("name", flat=True))


def _make_two_tenants():
    from tests.conftest import make_tenant

    make_tenant("bravo")
    return make_tenant("alpha")


async def test_async_iteration_without_a_group_is_refused_too(db):
    with pytest.raises(ScopeError):
        [thing async for thing in Thing.objects.aiterator()]


def test_a_tenant_queryset_cannot_be_smuggled_in_as_a_subquery(tenant_a):
    with pytest.raises(ScopeError):
        list(Group.objects.filter(things__in=Thing.objects.all()))


def test_a_scope_of_several_groups_sees_each_of_them_and_no_other(tenant_a, tenant_b):
    other = services.group_create(name="Charlie", slug="charlie", actor=None, owner=tenant_a.owner)
    with group_scope(tenant_a.group, tenant_b.group):
        names = set(Thing.objects.values_list("name", flat=True))
        assert names == {"Alpha Agent", "Bravo Agent"}
        assert active_group() is None  # no single group to write to by default
        with pytest.raises(ScopeError):
            services.thing_create(
                group=other, type=Thing.Type.TASK, name="Sneak", actor=tenant_a.owner
            )
        services.thing_create(
            group=tenant_b.group, type=Thing.Type.TASK, name="Allowed", actor=tenant_b.owner
        )
    with group_scope():
        assert not Thing.objects.exists()  # a scope of no group sees nothing, it never opens up


def test_a_tenant_admin_runs_inside_their_groups_scope(rf, tenant_a, tenant_b, superuser):
    from config.admin_site import admin_scope

    request = rf.get("/admin/")
    request.user = tenant_a.owner
    with admin_scope(request):
        assert set(Thing.objects.values_list("group_id", flat=True)) == {tenant_a.group.pk}
    request = rf.get("/admin/")
    request.user = tenant_a.member  # not staff: no groups at all
    with admin_scope(request):
        assert not Thing.objects.exists()
    request = rf.get("/admin/")
    request.user = superuser
    with admin_scope(request):
        assert Thing.objects.count() == 2
