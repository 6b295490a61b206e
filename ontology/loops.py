"""One object per event loop: a process's runs, fan-out and log writer live on its loop.

Tests run each case on a fresh loop; keying on the loop (weakly) gives each its own
and lets a closed loop's objects go.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._objects: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get(self) -> T:
        """This loop's object, made on first use."""
        loop = asyncio.get_running_loop()
        if loop not in self._objects:
            self._objects[loop] = self._factory()
        return self._objects[loop]

    def pop(self) -> T | None:
        """This loop's object, no longer kept (None when it was never made)."""
        return self._objects.pop(asyncio.get_running_loop(), None)
