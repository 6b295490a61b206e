"""Sessions live in PostgreSQL and are read through Redis (config.sessions): with Redis away
they are still read and made, and a sign-out waits for Redis rather than leave a copy there."""

import pytest
from django.contrib.sessions.models import Session

from config.sessions import UNREACHABLE, SessionStore

pytestmark = pytest.mark.django_db


@pytest.fixture
def cache_on(settings, valkey):
    """Django's cache on the suite's own Valkey, which the test can kill."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": valkey.url()}}
    return valkey


def test_a_session_is_read_and_made_while_redis_is_away_from_the_database(cache_on):
    kept = SessionStore()
    kept["who"] = "alice"
    kept.create()
    assert SessionStore(kept.session_key)._cache.get(kept.cache_key) == {"who": "alice"}
    cache_on.kill()

    assert SessionStore(kept.session_key).load() == {"who": "alice"}
    made = SessionStore()
    made["who"] = "bob"
    made.create()  # the new key's check and the cache's copy both fail quietly
    assert SessionStore(made.session_key).load() == {"who": "bob"}
    assert Session.objects.filter(session_key=made.session_key).exists()


def test_a_sign_out_fails_while_redis_is_away_and_keeps_the_session_whole(cache_on):
    session = SessionStore()
    session["who"] = "alice"
    session.create()
    cache_on.kill()

    with pytest.raises(UNREACHABLE):
        SessionStore(session.session_key).flush()
    assert Session.objects.filter(session_key=session.session_key).exists()

    cache_on.start()
    assert SessionStore(session.session_key).load() == {"who": "alice"}  # refilled
    SessionStore(session.session_key).flush()
    assert not Session.objects.filter(session_key=session.session_key).exists()
    assert SessionStore(session.session_key)._cache.get(session.cache_key) is None
