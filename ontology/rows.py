"""One row's INSERT or UPDATE with its SQL made once per process, for the rows every turn
writes.

Django compiles a statement anew for every `save()`: for the rows each chat turn writes
(its question and answer, their audit events, the thread's last activity), compiling cost
the web process more CPU than sending the statement. `insert(obj)` writes a new instance
as `obj.save()` would, and `update(obj, fields)` as `obj.save(update_fields=fields)`
would, with each statement made once per model (and set of fields):

* the values are what Django's own statement sends: each field's `pre_save` (defaults,
  `auto_now` and the like), prepared by the field for the database; an auto primary key
  is read back (RETURNING); an update that finds no row raises, as save() does;
* who may write to which group is the callers' to check, as it is around save(): the
  services check it (ontology.scoping.ensure_group_allowed) where a write is a tenant's,
  and some writes are meant for several groups at once (a person's sign-in is audited in
  each of their groups, whichever group's page they are on);
* anything this does not cover goes through `save()` instead: a model with parents or
  save signals listened to, a field Django fills in from the database (db_default, a
  generated column) or writes with a placeholder of its own, a value that is an expression.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError, connections, models, router
from django.db.models.signals import post_save, pre_save

Statement = tuple[str, list, list]  # SQL, the fields whose values it sends, those it reads back
_statements: dict[tuple, Statement | None] = {}


def insert(obj: models.Model) -> models.Model:
    """Write a new `obj`; the instance, saved."""
    meta = type(obj)._meta
    using = router.db_for_write(type(obj), instance=obj)
    with_pk = meta.auto_field is None or obj.pk is not None
    statement = _statement(type(obj), using, ("insert", with_pk))
    values = _values(obj, statement, add=True, using=using)
    if values is None:
        obj.save(force_insert=True, using=using)
        return obj
    sql, _, returning = statement
    with connections[using].cursor() as cursor:
        cursor.execute(sql, values)
        if returning:
            for field, value in zip(returning, cursor.fetchone(), strict=True):
                setattr(obj, field.attname, value)
    obj._state.adding = False
    obj._state.db = using
    return obj


def update(obj: models.Model, fields: Sequence[str]) -> None:
    """Write these fields of a saved `obj`; raises DatabaseError when its row is not there,
    as save(update_fields=...) does."""
    using = router.db_for_write(type(obj), instance=obj)
    statement = _statement(type(obj), using, ("update", tuple(fields)))
    values = _values(obj, statement, add=False, using=using)
    if values is None:
        obj.save(update_fields=fields, using=using)
        return
    pk = type(obj)._meta.pk
    values.append(pk.get_db_prep_value(obj.pk, connection=connections[using]))
    with connections[using].cursor() as cursor:
        cursor.execute(statement[0], values)
        if cursor.rowcount == 0:
            raise DatabaseError("Save with update_fields did not affect any rows.")


def _values(
    obj: models.Model, statement: Statement | None, *, add: bool, using: str
) -> list[Any] | None:
    """The statement's values for `obj`, or None when save() must write it instead."""
    model = type(obj)
    if statement is None or pre_save.has_listeners(model) or post_save.has_listeners(model):
        return None
    connection = connections[using]
    values = []
    for field in statement[1]:
        value = field.pre_save(obj, add=add)
        if hasattr(value, "resolve_expression"):  # an expression: Django compiles it
            return None
        values.append(field.get_db_prep_save(value, connection=connection))
    return values


def _statement(model: type[models.Model], using: str, kind: tuple) -> Statement | None:
    key = (model, using, kind)
    if key not in _statements:
        _statements[key] = _made(model, using, kind)
    return _statements[key]


def _made(model: type[models.Model], using: str, kind: tuple) -> Statement | None:
    """The statement, or None for what is left to save()."""
    meta = model._meta
    if meta.parents or meta.proxy:
        return None
    quote = connections[using].ops.quote_name
    table = quote(meta.db_table)
    # Names from the model's own metadata, quoted; every value a parameter.
    if kind[0] == "insert":
        with_pk = kind[1]
        fields = [f for f in meta.local_concrete_fields if with_pk or f is not meta.auto_field]
        returning = [] if with_pk else [meta.auto_field]
        columns = ", ".join(quote(f.column) for f in fields)
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"  # noqa: S608
        if returning:
            sql += " RETURNING " + ", ".join(quote(f.column) for f in returning)
    else:
        fields = [meta.get_field(name) for name in kind[1]]
        if any(not f.concrete or f.primary_key for f in fields):
            return None
        returning = []
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
        sql = f"UPDATE {table} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    if any(_left_to_django(f) for f in fields):
        return None
    return sql, fields, returning


def _left_to_django(field: Any) -> bool:
    """A field whose value the database fills in, or that Django writes its own way."""
    return (
        getattr(field, "generated", False)
        or getattr(field, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED
        or bool(getattr(field, "db_returning", False) and not field.primary_key)
        or hasattr(field, "get_placeholder")
    )
