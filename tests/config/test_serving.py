"""What a serving process sets up for itself when config.asgi is imported."""

import gc
import logging


def test_the_objects_made_at_startup_are_out_of_the_collectors_sight():
    # Imported here, not at collection: the application builds its middleware with the
    # settings of the moment, and the suite's (no HTTPS redirect) are set per test.
    import config.asgi

    assert config.asgi.application is not None
    assert gc.get_freeze_count() > 50_000  # Django's apps and models, the SDKs' types


def test_the_providers_transport_does_not_log_every_model_call():
    import config.asgi  # noqa: F401 - sets up what a serving process has

    assert logging.getLogger("httpx2").getEffectiveLevel() >= logging.WARNING
