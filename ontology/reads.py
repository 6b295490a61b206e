"""A tenant-owned read with its SQL made once per process, for the reads every turn makes.

Django compiles a query anew each time it runs. A turn's start reads its thread's
messages (chat.selectors.thread_rows), and under cProfile compiling that query was the
largest part of the start's trip to the database. `Read(model, *keys)` makes the
statement once per process (and database) through the model's own manager, then runs it
with new values:

* the tenant check is the manager's: the statement is compiled from `model.objects`
  inside a group scope, so it holds the manager's group filter, and each run binds the
  active group there. A run with exactly one active group goes this way; any other scope
  (none, several groups, scopes disabled) runs the manager's queryset as before, which
  refuses with no group (ontology.scoping);
* the rows are what the queryset gives: the model's ordering, every concrete field, the
  database converters and the fields' `from_db_value` applied (JSON decoded and the like).

Only equality on integer fields (keys), a plain model (no select_related, annotations or
deferred fields): what a turn reads.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from django.db import connections, models, router

from ontology.scoping import active_group, group_scope

_FIRST_SENTINEL = -7_919_000_001  # a key no row has, to find where each value goes


class _Statement(NamedTuple):
    sql: str
    params: list[Any]  # with a placeholder value where each key's goes
    slots: dict[str, int]  # the key (or "group") to its place in params
    names: list[str]  # the attnames of the selected columns, in order
    converters: list[tuple[int, list, Any]]  # (column, converters, expression)


class Read:
    """`Read(Message, "thread_id")(thread_id=7)`: the model's rows with these keys, in the
    group that is active, as `list(Message.objects.filter(thread_id=7))` gives them."""

    def __init__(self, model: type[models.Model], *keys: str) -> None:
        for key in keys:
            field = model._meta.get_field(key)
            if field.get_internal_type() not in _INTEGER_TYPES and not _is_key(field):
                raise TypeError(f"{model.__name__}.{key}: a Read binds integer keys only.")
        self.model = model
        self.keys = keys
        self._statements: dict[str, _Statement] = {}

    def __call__(self, **values: int) -> list[models.Model]:
        if set(values) != set(self.keys):
            raise TypeError(f"a Read of {self.model.__name__} takes {', '.join(self.keys)}")
        group = active_group()
        if group is None:  # no group, several, or scopes disabled: the manager decides
            return list(self.model.objects.filter(**values))
        using = router.db_for_read(self.model)
        statement = self._statements.get(using) or self._make(using)
        params = list(statement.params)
        params[statement.slots["group"]] = group.pk
        for key, value in values.items():
            params[statement.slots[key]] = int(value)
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            rows = cursor.fetchall()
        from_db, names = self.model.from_db, statement.names
        if not statement.converters:
            return [from_db(using, names, row) for row in rows]
        found = []
        for row in map(list, rows):
            for column, converters, expression in statement.converters:
                value = row[column]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[column] = value
            found.append(from_db(using, names, row))
        return found

    def _make(self, using: str) -> _Statement:
        """Compile the manager's queryset once, with placeholder values: where each lands
        in the parameters is where a run's values go."""
        from ontology.models import Group  # the scope needs a Group; ontology.models imports us

        sentinels = {key: _FIRST_SENTINEL - n for n, key in enumerate(("group", *self.keys))}
        with group_scope(Group(pk=sentinels["group"])):
            queryset = self.model.objects.filter(**{k: sentinels[k] for k in self.keys})
            compiler = queryset.query.get_compiler(using=using)
            sql, params = compiler.as_sql()
        params = list(params)
        slots = {}
        for key, sentinel in sentinels.items():
            places = [n for n, value in enumerate(params) if value == sentinel]
            if len(places) != 1:
                raise TypeError(f"{self.model.__name__}: {key} is not bound once in {sql}")
            slots[key] = places[0]
        klass_info = compiler.klass_info
        if compiler.annotation_col_map or klass_info.get("related_klass_infos"):
            raise TypeError(f"{self.model.__name__}: a Read selects the model's fields alone.")
        columns = [col for col, _, _ in compiler.select]
        names = [col.target.attname for col in columns]
        converters = [
            (column, found, expression)
            for column, (found, expression) in compiler.get_converters(columns).items()
        ]
        statement = _Statement(sql, params, slots, names, converters)
        self._statements[using] = statement
        return statement


_INTEGER_TYPES = {
    "AutoField",
    "BigAutoField",
    "SmallAutoField",
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    "PositiveIntegerField",
    "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
}


def _is_key(field: Any) -> bool:
    """A foreign key to an integer primary key."""
    target = getattr(field, "target_field", None)
    return field.is_relation and target is not None and target.get_internal_type() in _INTEGER_TYPES
