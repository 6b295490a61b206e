"""The bench's tenant: one enterprise group, one user, thread and session per client, and
one user with a thread per idle socket."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.hashers import make_password

from bench.streamslib.workload import SYSTEM, agent_model
from chat import services as chat_services
from ontology import services
from ontology.models import Group, Thing, User
from ontology.scoping import group_scope


@dataclass
class Tenant:
    group: Group
    threads: list[int]
    cookies: list[str]
    slow_thread: int
    slow_cookie: str
    warmup_threads: list[int]
    idle_threads: list[int]  # one per idle socket: no run ever streams on them
    idle_cookie: str
    later_threads: list[list[int]]  # each later round's threads (--rounds), one per client


def session_cookie(user: User) -> str:
    """A logged-in session, as django.contrib.auth.login would store it."""
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def setup_tenant(
    clients: int,
    *,
    idle: int,
    words: int,
    tps: float,
    slow_words: int,
    warmup: int,
    rounds: int = 1,
) -> Tenant:
    stamp = f"{int(time.time())}-{os.getpid()}"
    owner = User.objects.create_user(f"owner-{stamp}@bench.example", f"owner-{stamp}@bench.example")
    group = services.group_create(
        name=f"Streams bench {stamp}", actor=None, owner=owner, plan=Group.Plan.ENTERPRISE
    )
    agent = services.thing_create(
        group=group,
        type=Thing.Type.AGENT,
        name="Streaming agent",
        actor=None,
        properties={
            "provider": "simulator",
            "model": agent_model(words, tps),
            "systemPrompt": SYSTEM,
        },
    )
    slow_agent = services.thing_create(
        group=group,
        type=Thing.Type.AGENT,
        name="Long unpaced agent",
        actor=None,
        properties={
            "provider": "simulator",
            "model": agent_model(slow_words, 0),
            "systemPrompt": SYSTEM,
            "maxTokens": 16_384,
        },
    )
    users = User.objects.bulk_create(
        [
            User(
                username=f"c{i}-{stamp}@bench.example",
                email=f"c{i}-{stamp}@bench.example",
                password=make_password(None),
            )
            for i in range(clients + 2)
        ]
    )
    threads, cookies = [], []
    with group_scope(group):
        for user in users:
            services.membership_create(group=group, user=user, actor=None)
        for user in users[:clients]:
            threads.append(chat_services.thread_create(group=group, agent=agent, user=user).pk)
            cookies.append(session_cookie(user))
        later = [
            [
                chat_services.thread_create(group=group, agent=agent, user=user).pk
                for user in users[:clients]
            ]
            for _ in range(rounds - 1)
        ]
        slow_user = users[clients]
        slow = chat_services.thread_create(group=group, agent=slow_agent, user=slow_user)
        warm = [
            chat_services.thread_create(group=group, agent=agent, user=slow_user).pk
            for _ in range(warmup)
        ]
        idle_user = users[clients + 1]
        idle_threads = [
            chat_services.thread_create(group=group, agent=agent, user=idle_user).pk
            for _ in range(idle)
        ]
    return Tenant(
        group,
        threads,
        cookies,
        slow.pk,
        session_cookie(slow_user),
        warm,
        idle_threads,
        session_cookie(idle_user),
        later,
    )
