"""Each async test runs on its own event loop: end that loop's runs and listeners with it."""

import pytest

from chat.runs import close_registry


@pytest.fixture
async def close_runs():
    yield
    await close_registry()
