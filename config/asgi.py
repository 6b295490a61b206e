"""ASGI entry point: HTTP goes to Django; WebSockets go through session auth and an Origin check."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddleware, get_user  # noqa: E402 - needs Django set up first
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from channels.sessions import CookieMiddleware, SessionMiddleware  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.runs import StartRunsOnFirstRequest  # noqa: E402
from ontology.db_async import db_call  # noqa: E402


class PooledAuthMiddleware(AuthMiddleware):
    """channels' AuthMiddleware, loading the session and the user on the request pool.

    channels loads them on asgiref's one thread-sensitive thread, so every socket opening
    in the process waited its turn there (200 at once took over a second).
    """

    async def resolve_scope(self, scope):
        scope["user"]._wrapped = await db_call(get_user.func)(scope)


application = StartRunsOnFirstRequest(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(
                CookieMiddleware(
                    SessionMiddleware(PooledAuthMiddleware(URLRouter(websocket_urlpatterns)))
                )
            ),
        }
    )
)
