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
        # The last loop asked for and its object: a served process has one loop, and asks
        # for every event a run streams (a weak dictionary's lookup makes a weak reference).
        self._last: tuple[weakref.ref, T] | None = None

    def get(self) -> T:
        """This loop's object, made on first use."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0]() is loop:
            return last[1]
        if loop not in self._objects:
            self._objects[loop] = self._factory()
        found = self._objects[loop]
        self._last = (weakref.ref(loop), found)
        return found

    def pop(self) -> T | None:
        """This loop's object, no longer kept (None when it was never made)."""
        self._last = None
        return self._objects.pop(asyncio.get_running_loop(), None)
