"""One row's INSERT with its SQL made once per process, for the rows every turn writes.

Django compiles an INSERT anew for every `save()` of a new row: for the rows each chat
turn writes (its question, its answer, their audit events), compiling cost the web
process more CPU than sending the statement. `insert(obj)` writes a new instance as
`obj.save()` would, with the statement made once per model:

* the values are what Django's own INSERT sends: each field's `pre_save` (defaults,
  `auto_now` and the like), prepared by the field for the database, and an auto primary
  key is read back (RETURNING);
* the write is refused outside the active group's scope, as the services refuse it
  (ontology.scoping.ensure_group_allowed);
* anything this does not cover goes through `obj.save()` instead: a model with parents
  or save signals listened to, a field Django fills in from the database (db_default, a
  generated column), a value that is an expression.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models, router
from django.db.models.signals import post_save, pre_save

from ontology.scoping import ensure_group_allowed

_statements: dict[tuple[type[models.Model], str, bool], tuple[str, list, list] | None] = {}


def insert(obj: models.Model) -> models.Model:
    """Write a new `obj` (its group, when it has one, in scope); the instance, saved."""
    model = type(obj)
    meta = model._meta
    if _tenant_owned(model) and obj.group_id is not None:
        ensure_group_allowed(obj.group)
    using = router.db_for_write(model, instance=obj)
    with_pk = meta.auto_field is None or obj.pk is not None
    statement = _statement(model, using, with_pk)
    if statement is None or pre_save.has_listeners(model) or post_save.has_listeners(model):
        obj.save(force_insert=True, using=using)
        return obj
    sql, fields, returning = statement
    connection = connections[using]
    values = []
    for field in fields:
        value = field.pre_save(obj, add=True)
        if hasattr(value, "resolve_expression"):  # an expression: Django compiles it
            obj.save(force_insert=True, using=using)
            return obj
        values.append(field.get_db_prep_save(value, connection=connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if returning:
            for field, value in zip(returning, cursor.fetchone(), strict=True):
                setattr(obj, field.attname, value)
    obj._state.adding = False
    obj._state.db = using
    return obj


def _statement(
    model: type[models.Model], using: str, with_pk: bool
) -> tuple[str, list, list] | None:
    """(SQL, the fields it sends, the fields it reads back), or None for what `insert`
    leaves to `save()`."""
    key = (model, using, with_pk)
    if key not in _statements:
        _statements[key] = _made(model, using, with_pk)
    return _statements[key]


def _made(model: type[models.Model], using: str, with_pk: bool) -> tuple[str, list, list] | None:
    meta = model._meta
    if meta.parents or meta.proxy:
        return None
    fields = [f for f in meta.local_concrete_fields if with_pk or f is not meta.auto_field]
    if any(_filled_by_database(f) for f in fields):
        return None
    returning = [] if with_pk else [meta.auto_field]
    quote = connections[using].ops.quote_name
    # Names from the model's own metadata, quoted; every value a parameter.
    table, columns = quote(meta.db_table), ", ".join(quote(f.column) for f in fields)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"  # noqa: S608
    if returning:
        sql += " RETURNING " + ", ".join(quote(f.column) for f in returning)
    return sql, fields, returning


def _tenant_owned(model: type[models.Model]) -> bool:
    return any(field.name == "group" for field in model._meta.concrete_fields)


def _filled_by_database(field: Any) -> bool:
    return (
        getattr(field, "generated", False)
        or getattr(field, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED
        or bool(getattr(field, "db_returning", False) and not field.primary_key)
    )
