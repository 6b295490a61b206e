"""What a serving process sets up for itself when config.asgi is imported."""

import gc
import logging

import config.asgi


def test_the_objects_made_at_startup_are_out_of_the_collectors_sight():
    assert config.asgi.application is not None
    assert gc.get_freeze_count() > 50_000  # Django's apps and models, the SDKs' types


def test_the_providers_transport_does_not_log_every_model_call():
    assert logging.getLogger("httpx2").getEffectiveLevel() >= logging.WARNING
