"""ASGI entry point: HTTP goes to Django (programs' paths through api.handler's lean
stack, pages through the full one); a WebSocket is a program's (an API token) or a
browser's (session auth and an Origin check)."""

import codecs
import gc
import logging
import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - needs Django set up
from django.conf import settings  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

from agents.providers import registry as providers  # noqa: E402
from api.handler import APIHandler, ByPath  # noqa: E402
from chat import titles  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.runs import StartRunsOnFirstRequest  # noqa: E402
from config.websocket_auth import BearerTokenOrSession, BrowserSession  # noqa: E402
from config.websocket_origin import SameOriginValidator  # noqa: E402


def close_oversize_frames(server_module) -> None:
    """Make daphne close a socket that sends an oversize frame (over its
    `--websocket_max_message_size`, 1 MB by default) with 1009 and a reason, where autobahn's
    default drops the connection without a word. daphne has no option for it, and imports
    the application before it builds its factory, so the factory class is swapped here."""
    base = server_module.WebSocketFactory
    if getattr(base, "closes_oversize_frames", False):
        return

    class ClosingWebSocketFactory(base):
        closes_oversize_frames = True

        def setProtocolOptions(self, **options):
            super().setProtocolOptions(failByDrop=False, **options)

    server_module.WebSocketFactory = ClosingWebSocketFactory


if "daphne.server" in sys.modules:  # served by daphne (importing it here would pick a reactor)
    close_oversize_frames(sys.modules["daphne.server"])


application = StartRunsOnFirstRequest(
    ProtocolTypeRouter(
        {
            "http": ByPath(api=APIHandler(), pages=django_asgi_app),
            "websocket": BearerTokenOrSession(
                token_app=URLRouter(websocket_urlpatterns),
                session_app=SameOriginValidator(BrowserSession(URLRouter(websocket_urlpatterns))),
            ),
        }
    )
)


logger = logging.getLogger(__name__)


def prepare_process() -> None:
    """What a process's first turns would otherwise do on its event loop, holding up every
    socket of the process for tens of milliseconds: done before it serves, and before the
    freeze below, which then keeps what it made out of the collector's sight too. The
    provider clients' TLS context and the SDK modules they load lazily
    (agents.providers.registry.prepare); the title queue's task module and Celery's
    producer pool (chat.titles.prepare); the session serializer, imported by a socket's
    first session read; the codec a first connection by host name encodes the name with.
    A step that fails is logged and left to the first turn that needs it: the process
    serves all the same."""
    for step in (providers.prepare, titles.prepare, _session_serializer, _host_name_codec):
        try:
            step()
        except Exception:
            logger.exception("could not prepare %s as the process starts", step.__qualname__)


def _session_serializer() -> None:
    import_string(settings.SESSION_SERIALIZER)


def _host_name_codec() -> None:
    codecs.lookup("idna")


prepare_process()


def freeze_startup_objects() -> None:
    """Move what importing the project made (Django's apps, models, URL patterns, the SDKs'
    types: some 350,000 objects) out of the garbage collector's sight. They live as long as
    the process, yet every full collection walked them all: a pause of tens of
    milliseconds in the event loop, in the middle of every stream of the process. What is
    garbage already is collected first, so nothing dead is kept.

    Full collections are also made rarer (PARLEY_GC_FULL_AFTER). Python considers one
    after every 10 collections of the second generation, and makes it once the objects
    that outlived those since the last are a quarter of the old ones. A serving process's
    sockets and turns live seconds to minutes, long enough to get there: at 200 streams
    over two processes, 5 of 6 processes in 3 runs of the streams bench made one in the
    middle of the streams, a pause of 26-76 ms on two busy cores (measured with
    gc.callbacks), and the first tokens and starts that fell in it waited that much.
    Considered ten times less often, none did in 2 runs; what a full collection alone
    frees (garbage in reference cycles that lived through the young collections) waits
    that much longer. The processes' memory was the same (394-395 MiB at the peak)."""
    gc.collect()
    gc.freeze()
    if settings.PARLEY_GC_FULL_AFTER:
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, settings.PARLEY_GC_FULL_AFTER)


freeze_startup_objects()
