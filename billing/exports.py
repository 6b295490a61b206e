"""CSV downloads for the ledger, statements and the audit trail."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_download(filename: str, rows: AsyncIterator[list[Any]]) -> StreamingHttpResponse:
    """Stream CSV rows as they are read; async, so daphne sends them without buffering."""
    writer = csv.writer(_Echo())

    async def lines() -> AsyncIterator[str]:
        async for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def csv_file(filename: str, rows: list[list[Any]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    csv.writer(response).writerows(rows)
    return response
