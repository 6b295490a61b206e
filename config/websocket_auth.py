"""Who opens a socket: a program with an API token, or a browser with its session.

A socket opened with `Authorization: Bearer prl_…` is a program's: the token says who it
is (ontology.tokens) and the Origin check does not apply, as a browser never sends that
header on a socket and so cannot be made to use a token it does not hold. A bad token
gets the same close as no session (4401). Every other socket goes the browser's way:
the Origin check, the session cookie, the user.
"""

from __future__ import annotations

from importlib import import_module

from channels.auth import UserLazyObject
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import parse_cookie

from ontology.db_async import db_call
from ontology.tokens import authenticate, bearer_secret


class BearerTokenOrSession:
    """A program's socket (a Bearer token) to `token_app`, any other to `session_app`.

    Like every layer of a browser's socket here (config.websocket_origin.SameOriginValidator,
    BrowserSession), it hands a browser's socket on without a coroutine of its own: it
    returns the inner application's, so nothing of it stays in memory while the socket is
    open (see BrowserSession)."""

    def __init__(self, *, token_app, session_app) -> None:
        self.token_app = token_app
        self.session_app = session_app

    def __call__(self, scope, receive, send):
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return self._with_token(value, scope, receive, send)
        return self.session_app(scope, receive, send)

    async def _with_token(self, authorization: bytes, scope, receive, send):
        access = await db_call(authenticate)(bearer_secret(authorization.decode("latin1")))
        scope = dict(scope, user=access.user if access else AnonymousUser(), api_token=access)
        return await self.token_app(scope, receive, send)


class BrowserSession:
    """A browser's socket: its cookies, its session and its user, in the scope.

    What channels' CookieMiddleware, SessionMiddleware and AuthMiddleware put there, in one
    layer:
    * `cookies`: the Cookie header parsed as Django parses a request's;
    * `session`: the session store for the cookie's key, read on first use;
    * `user`: channels' lazy user, left unread. The thread consumer reads the user with the
      thread it names, in one trip (chat.consumers._who_and_where). channels' AuthMiddleware
      reads it on asgiref's one thread-sensitive thread, so every socket opening in the
      process waited its turn there (200 at once took over a second).

    What is left out, on purpose:
    * the wrapper channels' SessionMiddleware puts round `send`, to save a changed session
      when a response starts (`http.response.start`). A socket never sends that, yet the
      wrapper read the session's `modified` and `is_empty()` through its lazy proxy for
      every frame, some 3% of daphne's CPU at 200 streams. A socket never changes its
      session (signing in and out are pages), so its frames go straight to the server's
      `send`;
    * a layer's own coroutine. Each of channels' three copies the scope and awaits the
      next layer, so its coroutine and its copy stay in memory as long as the socket is
      open. This one makes one copy and returns the inner application's coroutine.
    """

    def __init__(self, inner) -> None:
        self.inner = inner

    def __call__(self, scope, receive, send):
        cookies = {}
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                cookies = parse_cookie(value.decode("latin1"))
                break
        store = import_module(settings.SESSION_ENGINE).SessionStore
        session = store(cookies.get(settings.SESSION_COOKIE_NAME))
        scope = dict(scope, cookies=cookies, session=session, user=UserLazyObject())
        return self.inner(scope, receive, send)
