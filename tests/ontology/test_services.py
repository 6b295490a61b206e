import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from ontology import services
from ontology.models import AppendOnlyError, Event, Membership, Thing
from ontology.scoping import group_scope, scopes_disabled


def events_of(group, **filters):
    with group_scope(group):
        return list(Event.objects.filter(**filters).order_by("id"))


def test_creating_a_thing_writes_its_event(tenant_a):
    task = services.thing_create(
        group=tenant_a.group,
        type=Thing.Type.TASK,
        name="Call the supplier",
        properties={"priority": "high"},
        actor=tenant_a.member,
    )
    (event,) = events_of(tenant_a.group, type="task.created")
    assert event.actor == tenant_a.member
    assert (event.target_type, event.target_id) == ("task", str(task.pk))
    assert event.target_label == "Call the supplier"


def test_updating_records_what_changed(tenant_a):
    services.thing_update(
        thing=tenant_a.agent,
        actor=tenant_a.owner,
        name="Renamed",
        properties={**tenant_a.agent.properties, "temperature": 1.5},
    )
    (event,) = events_of(tenant_a.group, type="agent.updated")
    assert event.metadata["changes"]["name"] == ["Alpha Agent", "Renamed"]
    assert event.metadata["changes"]["properties"] == {"temperature": [0.2, 1.5]}


def test_an_update_that_changes_nothing_writes_no_event(tenant_a):
    services.thing_update(thing=tenant_a.agent, actor=tenant_a.owner, name="Alpha Agent")
    assert events_of(tenant_a.group, type="agent.updated") == []


def test_deleting_writes_an_event_that_outlives_the_row(tenant_a):
    agent_id = tenant_a.agent.pk
    services.thing_delete(thing=tenant_a.agent, actor=tenant_a.owner)
    with group_scope(tenant_a.group):
        assert not Thing.objects.filter(pk=agent_id).exists()
    (event,) = events_of(tenant_a.group, type="agent.deleted")
    assert event.target_id == str(agent_id)


def test_a_refused_change_leaves_neither_row_nor_event(tenant_a):
    before = len(events_of(tenant_a.group))
    with pytest.raises(ValidationError) as error:
        services.thing_create(
            group=tenant_a.group,
            type="task",
            name="x",
            properties={"state": "sleeping"},
            actor=tenant_a.owner,
        )
    assert "state" in error.value.message_dict
    assert len(events_of(tenant_a.group)) == before
    with group_scope(tenant_a.group):
        assert not Thing.objects.filter(name="x").exists()


def test_the_change_and_its_event_roll_back_together(tenant_a):
    before = len(events_of(tenant_a.group))
    with pytest.raises(RuntimeError), transaction.atomic():
        services.thing_create(group=tenant_a.group, type="task", name="y", actor=tenant_a.owner)
        raise RuntimeError("the caller's transaction fails")
    assert len(events_of(tenant_a.group)) == before


def test_events_are_never_updated_or_deleted_through_the_orm(tenant_a):
    event = events_of(tenant_a.group)[0]
    event.type = "forged"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with group_scope(tenant_a.group):
        with pytest.raises(AppendOnlyError):
            Event.objects.filter(pk=event.pk).update(type="forged")
        with pytest.raises(AppendOnlyError):
            Event.objects.filter(pk=event.pk).delete()


@pytest.mark.parametrize(
    "sql", ["UPDATE ontology_event SET type = 'forged'", "DELETE FROM ontology_event"]
)
def test_the_database_refuses_to_change_events_too(tenant_a, sql):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert all(e.type != "forged" for e in events_of(tenant_a.group))


def test_deleting_a_group_takes_its_events_and_leaves_others(tenant_a, tenant_b):
    services.group_delete(group=tenant_a.group, actor=None)
    with scopes_disabled():
        assert not Event.objects.filter(group_id=tenant_a.group.pk).exists()
        assert Event.objects.filter(group=tenant_b.group).exists()


def test_the_last_owner_cannot_be_demoted_or_removed(tenant_a):
    with group_scope(tenant_a.group):
        owner = Membership.objects.get(user=tenant_a.owner)
    with pytest.raises(ValidationError, match="at least one owner"):
        services.membership_update(membership=owner, role="member", actor=tenant_a.owner)
    with pytest.raises(ValidationError, match="at least one owner"):
        services.membership_delete(membership=owner, actor=tenant_a.owner)
    with group_scope(tenant_a.group):
        member = Membership.objects.get(user=tenant_a.member)
    services.membership_update(membership=member, role="owner", actor=tenant_a.owner)
    services.membership_update(membership=owner, role="admin", actor=tenant_a.owner)
    (event,) = events_of(tenant_a.group, type="membership.updated", target_id=str(owner.pk))
    assert event.metadata["role"] == ["owner", "admin"]


def test_a_connection_cannot_reach_into_another_group(tenant_a, tenant_b):
    with pytest.raises(ValidationError, match="another group"):
        services.connection_create(
            group=tenant_a.group,
            type="uses",
            from_user=tenant_a.member,
            to_thing=tenant_b.agent,
            actor=tenant_a.owner,
        )
    with pytest.raises(ValidationError, match="members of the group"):
        services.connection_create(
            group=tenant_a.group,
            type="uses",
            from_user=tenant_b.member,
            to_thing=tenant_a.agent,
            actor=tenant_a.owner,
        )
    conn = services.connection_create(
        group=tenant_a.group,
        type="uses",
        from_user=tenant_a.member,
        to_thing=tenant_a.agent,
        actor=tenant_a.member,
    )
    (event,) = events_of(tenant_a.group, type="connection.created")
    assert event.target_id == str(conn.pk)


def test_only_an_owner_grants_or_removes_the_owner_role(tenant_a):
    with group_scope(tenant_a.group):
        member = Membership.objects.get(user=tenant_a.member)
    services.membership_update(membership=member, role="admin", actor=tenant_a.owner)
    admin = tenant_a.member
    with pytest.raises(ValidationError, match="Only an owner"):
        services.membership_update(membership=member, role="owner", actor=admin)
    with group_scope(tenant_a.group):
        owner = Membership.objects.get(user=tenant_a.owner)
    with pytest.raises(ValidationError, match="Only an owner"):
        services.membership_delete(membership=owner, actor=admin)
    with group_scope(tenant_a.group):
        assert Membership.objects.get(user=tenant_a.owner).role == "owner"


def test_an_event_type_outside_the_vocabulary_is_refused(tenant_a):
    with pytest.raises(ValueError):
        services.event_record(group=tenant_a.group, type="made.up")
    assert not events_of(tenant_a.group, type="made.up")
