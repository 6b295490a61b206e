"""Who opens a socket: a program with an API token, or a browser with its session.

A socket opened with `Authorization: Bearer prl_…` is a program's: the token says who it
is (ontology.tokens) and the Origin check does not apply, as a browser never sends that
header on a socket and so cannot be made to use a token it does not hold. A bad token
gets the same close as no session (4401). Every other socket goes the browser's way:
the Origin check, the session cookie, the user.
"""

from __future__ import annotations

from channels.sessions import InstanceSessionWrapper
from django.contrib.auth.models import AnonymousUser

from ontology.db_async import db_call
from ontology.tokens import authenticate, bearer_secret


class BearerTokenOrSession:
    def __init__(self, *, token_app, session_app) -> None:
        self.token_app = token_app
        self.session_app = session_app

    async def __call__(self, scope, receive, send):
        authorization = dict(scope.get("headers", [])).get(b"authorization")
        if authorization is None:
            return await self.session_app(scope, receive, send)
        access = await db_call(authenticate)(bearer_secret(authorization.decode("latin1")))
        scope = dict(scope, user=access.user if access else AnonymousUser(), api_token=access)
        return await self.token_app(scope, receive, send)


class SocketSession:
    """channels' SessionMiddleware for sockets, without its wrapper round every message sent.

    The scope gets the same lazy session (read on first use, from the cookie's key). What
    is left out: channels wraps `send` to save a changed session when a response starts
    (`http.response.start`), which a socket never sends, yet the wrapper read the
    session's `modified` and `is_empty()` through its lazy proxy for every frame, some 3%
    of daphne's CPU at 200 streams. A socket never changes its session (signing in and
    out are pages), so its frames go straight to the server's `send`.
    """

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)
