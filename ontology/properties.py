"""Validation of a Thing's `properties`, per type.

Each type registers one validator: it takes the raw dict and returns the
cleaned dict, or raises ValidationError keyed by property name so forms and
API callers can say which field is wrong. Apps register their types in
AppConfig.ready() (agents registers "agent").
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from decimal import Decimal
from numbers import Real
from typing import Any

from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator, validators

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


def _is_integer(checker: Any, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(checker: Any, value: Any) -> bool:
    return (
        isinstance(value, Real | Decimal) and not isinstance(value, bool) and math.isfinite(value)
    )


# JSON Schema counts 1.0 as an integer, and Python's json reads NaN and Infinity,
# which no bound refuses and PostgreSQL cannot store.
_PropertiesSchemaValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_number}
    ),
)


def schema_errors(schema: dict[str, Any], properties: dict[str, Any]) -> dict[str, str]:
    """Where `properties` breaks a JSON Schema, as one plain sentence per property name.

    Each property's subschema carries its sentence in "errorMessage" (ajv-errors'
    convention): one string, or one per failing keyword. "{value!r}" in a sentence
    is the value given. Unknown properties (additionalProperties: false) get
    reject_unknown_keys' sentence.
    """
    errors: dict[str, str] = {}
    for error in _PropertiesSchemaValidator(schema).iter_errors(properties):
        if error.validator == "additionalProperties":
            reject_unknown_keys(properties, set(schema["properties"]), errors)
            continue
        key = error.path[0]
        message = schema["properties"][key]["errorMessage"]
        if isinstance(message, dict):
            message = message[error.validator]
        errors.setdefault(key, message.format(value=properties[key]))
    return errors


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
