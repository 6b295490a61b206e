"""A person's own settings, kept in `User.preferences`: the page theme (and, from the profile
page, the default agent). Personal, not the organisation's: no audit Event."""

from __future__ import annotations

from typing import Any

from ontology.models import User

THEMES = ("system", "light", "dark")


def theme_of(user: Any) -> str:
    """The theme a person chose; "system" (follow the device) for everyone else."""
    if user is None or not user.is_authenticated:
        return "system"
    theme = (user.preferences or {}).get("theme")
    return theme if theme in THEMES else "system"


def preferences_update(*, user: User, **changes: Any) -> None:
    """Merge `changes` into the person's preferences (a None value removes the key)."""
    preferences = dict(user.preferences or {})
    for key, value in changes.items():
        if value is None:
            preferences.pop(key, None)
        else:
            preferences[key] = value
    user.preferences = preferences
    user.save(update_fields=["preferences"])
