"""JSON error bodies shaped like GraphQL responses, for requests refused before GraphQL runs."""

from __future__ import annotations

from starlette.responses import JSONResponse


def error_response(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status,
        headers=headers,
    )


DATABASE_UNAVAILABLE = "the database is unavailable; try again shortly"
