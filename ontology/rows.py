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
from typing import Any, NamedTuple

from django.db import DatabaseError, connections, models, router
from django.db.models.signals import post_save, pre_save

Statement = tuple[str, list, list]  # SQL, the fields whose values it sends, those it reads back
_statements: dict[tuple, Statement | None] = {}


def insert(obj: models.Model) -> models.Model:
    """Write a new `obj`; the instance, saved."""
    write = _insert_write(obj)
    if write is None:
        obj.save(force_insert=True, using=_using(obj))
        return obj
    _execute(write)
    return obj


def update(obj: models.Model, fields: Sequence[str]) -> None:
    """Write these fields of a saved `obj`; raises DatabaseError when its row is not there,
    as save(update_fields=...) does."""
    write = _update_write(obj, fields)
    if write is None:
        obj.save(update_fields=fields, using=_using(obj))
        return
    _execute(write)


class Batch:
    """Rows written together in one statement: what insert() and update() write, queued by
    `insert` and `update`, and sent by `write` as one data-modifying WITH. A turn's start
    writes its question, the thread's last activity, the question's audit event and the
    answer's row; one at a time, that was four round trips plus BEGIN and COMMIT, each a
    wake-up of the database thread waiting for the GIL behind a busy event loop. One
    statement is atomic as such: every row is written, or none.

    Only for rows that nothing reads before `write`: the rows are not in the database
    until then (an auto primary key, read back, is set by `write`). A row that save() must
    write (see the module docstring) is written at once, after the rows queued before it.
    """

    def __init__(self) -> None:
        self._writes: list[_Write] = []

    def insert(self, obj: models.Model) -> models.Model:
        write = _insert_write(obj)
        if write is None:
            self.write()
            obj.save(force_insert=True, using=_using(obj))
        else:
            self._writes.append(write)
        return obj

    def update(self, obj: models.Model, fields: Sequence[str]) -> None:
        write = _update_write(obj, fields)
        if write is None:
            self.write()
            obj.save(update_fields=fields, using=_using(obj))
        else:
            self._writes.append(write)

    def write(self) -> None:
        """Send the rows queued, in one statement (none when nothing is queued)."""
        writes, self._writes = self._writes, []
        if len(writes) > 1 and len({write.using for write in writes}) == 1:
            _execute_together(writes)
        else:  # one row, or rows routed to several databases
            for write in writes:
                _execute(write)


class _Write(NamedTuple):
    obj: models.Model
    using: str
    sql: str
    values: list[Any]
    returning: list  # the fields an insert reads back
    counted: bool  # an update: it must find its row


def _using(obj: models.Model) -> str:
    return router.db_for_write(type(obj), instance=obj)


def _insert_write(obj: models.Model) -> _Write | None:
    meta = type(obj)._meta
    using = _using(obj)
    with_pk = meta.auto_field is None or obj.pk is not None
    statement = _statement(type(obj), using, ("insert", with_pk))
    values = _values(obj, statement, add=True, using=using)
    if values is None:
        return None
    return _Write(obj, using, statement[0], values, statement[2], counted=False)


def _update_write(obj: models.Model, fields: Sequence[str]) -> _Write | None:
    using = _using(obj)
    statement = _statement(type(obj), using, ("update", tuple(fields)))
    values = _values(obj, statement, add=False, using=using)
    if values is None:
        return None
    pk = type(obj)._meta.pk
    values.append(pk.get_db_prep_value(obj.pk, connection=connections[using]))
    return _Write(obj, using, statement[0], values, [], counted=True)


def _execute(write: _Write) -> None:
    with connections[write.using].cursor() as cursor:
        cursor.execute(write.sql, write.values)
        if write.counted and cursor.rowcount == 0:
            raise DatabaseError("Save with update_fields did not affect any rows.")
        _saved(write, cursor.fetchone() if write.returning else ())


def _execute_together(writes: list[_Write]) -> None:
    """The writes as one statement: each a data-modifying WITH query, then one row of what
    they read back (an insert's returned fields, an update's count of rows)."""
    # Names from the models' metadata and made here, quoted; every value a parameter.
    connection = connections[writes[0].using]
    quote = connection.ops.quote_name
    queries, reads, values = [], [], []
    for number, write in enumerate(writes):
        name = f"w{number}"
        if write.counted:
            queries.append(f"{name} AS ({write.sql} RETURNING 1)")
            reads.append(f"(SELECT count(*) FROM {name})")  # noqa: S608
        else:
            queries.append(f"{name} AS ({write.sql})")
            reads += [f"(SELECT {quote(f.column)} FROM {name})" for f in write.returning]  # noqa: S608
        values += write.values
    sql = f"WITH {', '.join(queries)} SELECT {', '.join(reads) or '1'}"
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = list(cursor.fetchone())
    for write in writes:
        if write.counted and row.pop(0) == 0:
            raise DatabaseError("Save with update_fields did not affect any rows.")
        read = [row.pop(0) for _ in write.returning]
        _saved(write, read)


def _saved(write: _Write, read: Sequence[Any]) -> None:
    for field, value in zip(write.returning, read, strict=True):
        setattr(write.obj, field.attname, value)
    if not write.counted:
        write.obj._state.adding = False
        write.obj._state.db = write.using


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
