"""Shared fixtures: two tenants, each with an owner (staff), a member and an agent."""

from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings
from django.core.cache import cache
from django.db import connections

from agents.configuration import forget_cached_configurations
from agents.simulator import SimulatorConfig, SimulatorThread
from billing.models import Plan
from chat.runs import close_registry
from ontology import services
from ontology.models import Group, Membership, Thing, User

AGENT_PROPERTIES = {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.2}


@dataclass
class Tenant:
    group: Group
    owner: User
    member: User
    agent: Thing


def make_user(username: str, *, staff: bool = False, superuser: bool = False) -> User:
    return User.objects.create_user(
        username=username,
        email=username,
        password="pw-" + username,
        is_staff=staff or superuser,
        is_superuser=superuser,
    )


def make_tenant(slug: str) -> Tenant:
    owner = make_user(f"owner@{slug}.example", staff=True)
    member = make_user(f"member@{slug}.example")
    group = services.group_create(name=f"{slug.title()} Inc", slug=slug, actor=None, owner=owner)
    services.membership_create(group=group, user=member, role=Membership.Role.MEMBER, actor=owner)
    agent = services.thing_create(
        group=group,
        type=Thing.Type.AGENT,
        name=f"{slug.title()} Agent",
        properties=AGENT_PROPERTIES,
        actor=owner,
    )
    return Tenant(group=group, owner=owner, member=member, agent=agent)


def set_plan(code: str = "free", **limits) -> Plan:
    """Give a plan the limits a test needs (plans are rows, edited in the admin)."""
    defaults = {**settings.PARLEY_PLAN_DEFAULTS[code], **limits}
    plan, _ = Plan.objects.update_or_create(code=code, defaults=defaults)
    return plan


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # Production-safe defaults redirect to HTTPS; the test client speaks plain HTTP.
    settings.SECURE_SSL_REDIRECT = False
    # No collectstatic before tests: serve static files from the app folders.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Password hashing is deliberately slow; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # A test's runs title their threads in the test's own process, so no title outlives the
    # test on the shared worker; tests/chat/test_titles_on_worker.py covers the worker.
    settings.PARLEY_TITLES_ON_WORKER = False


@pytest.fixture
def tenant_a(db) -> Tenant:
    return make_tenant("alpha")


@pytest.fixture
def tenant_b(db) -> Tenant:
    return make_tenant("bravo")


@pytest.fixture
def superuser(db) -> User:
    return make_user("root@parley.example", superuser=True)


@pytest.fixture
def clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
async def close_runs():
    """Each async test runs on its own event loop: end that loop's runs and listeners with it.
    A test that failed while its sockets were receiving leaves the channel layer's receive
    state (a lock held, bound to this loop) behind: the next tests get a layer of their own,
    rather than failing with this one."""
    yield
    await close_registry()
    if _left_receiving(channel_layers.backends.get(DEFAULT_CHANNEL_LAYER)):
        del channel_layers.backends[DEFAULT_CHANNEL_LAYER]


def _left_receiving(layer) -> bool:
    """Whether channels_redis' layer still counts a receive or holds a channel's lock."""
    locks = getattr(layer, "receive_clean_locks", None)
    return bool(getattr(layer, "receive_count", 0) or (locks is not None and locks.locks))


@pytest.fixture
async def thread_connections():
    """Close the DB connection the async ORM opened in asgiref's worker thread.

    In production Django closes it when the request ends; in a test nobody
    does, and the open session would stop the test database from being dropped.
    """
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture(scope="session", autouse=True)
def _no_sessions_left_at_the_end(django_db_setup, django_db_blocker):
    """Before the test database is dropped: close the connection pool, and end the sessions
    still open on the database (worker threads of the async ORM, the request pool and the
    run-log writer hold theirs for the life of the process, as they do in daphne), so the
    drop does not fail with "being accessed by other users"."""
    yield
    with django_db_blocker.unblock():
        connection = connections["default"]
        connection.close()
        connection.close_pool()
        with connection._nodb_cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [connection.settings_dict["NAME"]],
            )


@pytest.fixture(scope="session")
def simulator():
    with SimulatorThread(config=SimulatorConfig()) as sim:
        yield sim


@pytest.fixture
def sim(simulator, settings):
    settings.PARLEY_PROVIDER_BASE_URLS = {
        **settings.PARLEY_PROVIDER_BASE_URLS,
        "simulator": simulator.openai_base_url,
        "simulator-anthropic": simulator.anthropic_base_url,
    }
    settings.PARLEY_RETRY_BASE_DELAY = 0.01
    settings.PARLEY_RETRY_MAX_DELAY = 0.05
    simulator.clear()
    forget_cached_configurations()
    return simulator


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    with (
        django_db_blocker.unblock(),
        start_worker(
            app,
            pool="threads",
            concurrency=4,
            perform_ping_check=False,
            queues=["default", "tools", "embeddings"],
            shutdown_timeout=30,
        ) as worker,
    ):
        yield worker
