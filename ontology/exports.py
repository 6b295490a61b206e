"""CSV downloads (the audit trail, the ledger, statements), safe to open in a spreadsheet."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse

# OWASP's CSV injection list: a spreadsheet runs a cell starting with one of these as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """The value as a spreadsheet should show it: text it would run as a formula gets a leading
    quote. Numbers are not text, so a negative amount stays a number."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def plain_number(value: Any) -> Any:
    """A Decimal in positional notation, as an amount is written: str() gives a zero cost
    of eight places as "0E-8"."""
    return format(value, "f") if isinstance(value, Decimal) else value


def _cells(row: list[Any]) -> list[Any]:
    return [plain_number(csv_cell(value)) for value in row]


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_download(filename: str, rows: AsyncIterator[list[Any]]) -> StreamingHttpResponse:
    """Stream CSV rows as they are read; async, so daphne sends them without buffering."""
    writer = csv.writer(_Echo())

    async def lines() -> AsyncIterator[str]:
        async for row in rows:
            yield writer.writerow(_cells(row))

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def csv_file(filename: str, rows: list[list[Any]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    csv.writer(response).writerows(_cells(row) for row in rows)
    return response
