"""Migrations on a database that already holds data (an upgrade, not a fresh install)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_SOURCES = [("agents", "0003_toolcall_thread_toolcall_user_and_more")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_passages_written_before_sources_existed_become_sources(tenant_a):
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("agents")
    old = migrate(BEFORE_SOURCES)
    try:
        old.get_model("agents", "Knowledge").objects.create(
            group_id=tenant_a.group.pk, title="Refunds", content="Within 30 days."
        )
        new = migrate(latest)  # failed with "pending trigger events" before the fix
    finally:
        migrate(latest)

    (passage,) = new.get_model("agents", "Knowledge").objects.all()
    assert passage.source.title == "Refunds" and passage.source.group_id == tenant_a.group.pk
