"""Validation of a Thing's `properties`, per type.

Each type registers one validator: it takes the raw dict and returns the
cleaned dict, or raises ValidationError keyed by property name so forms and
API callers can say which field is wrong. Apps register their types in
AppConfig.ready() (agents registers "agent").
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError

PropertiesValidator = Callable[[dict[str, Any]], dict[str, Any]]

_validators: dict[str, PropertiesValidator] = {}


def register_properties_validator(thing_type: str, validator: PropertiesValidator) -> None:
    _validators[thing_type] = validator


def validate_properties(thing_type: str, properties: dict[str, Any] | None) -> dict[str, Any]:
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise ValidationError({"properties": "Properties must be a JSON object."})
    validator = _validators.get(thing_type)
    if validator is None:
        raise ValidationError({"type": f"Unknown thing type {thing_type!r}."})
    return validator(properties)


def reject_unknown_keys(properties: dict[str, Any], known: set[str], errors: dict) -> None:
    for key in sorted(set(properties) - known):
        errors[key] = f"Unknown property {key!r}. Known properties: {', '.join(sorted(known))}."


TASK_STATES = ("open", "in_progress", "done")
TASK_PRIORITIES = ("low", "normal", "high")


def validate_task_properties(properties: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    reject_unknown_keys(
        properties, {"description", "state", "priority", "dueDate", "createdFrom"}, errors
    )
    cleaned: dict[str, Any] = {
        "description": properties.get("description", ""),
        "state": properties.get("state", "open"),
        "priority": properties.get("priority", "normal"),
    }
    if not isinstance(cleaned["description"], str) or len(cleaned["description"]) > 10_000:
        errors["description"] = "Description must be text of at most 10 000 characters."
    if cleaned["state"] not in TASK_STATES:
        errors["state"] = f"State must be one of: {', '.join(TASK_STATES)}."
    if cleaned["priority"] not in TASK_PRIORITIES:
        errors["priority"] = f"Priority must be one of: {', '.join(TASK_PRIORITIES)}."
    due = properties.get("dueDate")
    if due not in (None, ""):
        try:
            cleaned["dueDate"] = datetime.date.fromisoformat(str(due)).isoformat()
        except ValueError:
            errors["dueDate"] = "Due date must be a date like 2026-12-31."
    if "createdFrom" in properties:
        cleaned["createdFrom"] = str(properties["createdFrom"])[:200]
    if errors:
        raise ValidationError(errors)
    return cleaned


register_properties_validator("task", validate_task_properties)
