"""Errors in OpenAI's shape, mapped from typed exceptions in one place."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bosun.engine.client import (
    EngineError,
    EngineOverloadedError,
    InvalidRequestError,
    UnknownAdapterError,
)

__all__ = ["APIError", "ClientGoneError", "error_body", "install_error_handlers"]


class ClientGoneError(Exception):
    """The client disconnected before its answer was ready: nothing to send, no fault."""


class APIError(Exception):
    """An error the client gets as ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _response(exc: APIError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.message, exc.type, exc.param, exc.code),
        status_code=exc.status,
        headers=exc.headers,
    )


def _validation(exc: RequestValidationError) -> APIError:
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return APIError(400, "the request body is not valid JSON", code="invalid_json")
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = (
        ".".join(
            p
            for p in loc
            if not p.isdigit() and "[" not in p and p not in ("function-after", "function-before")
        )
        or None
    )
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    if first.get("type") == "missing":
        message = "required parameter is missing"
    if param is None:  # a check across fields names its field first: "tool_choice: ..."
        named = re.match(r"([a-z_]+): ", message)
        return APIError(400, message, param=named.group(1) if named else None)
    return APIError(400, f"{param}: {message}", param=param)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(_: Request, exc: APIError) -> JSONResponse:
        return _response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _response(_validation(exc))

    @app.exception_handler(json.JSONDecodeError)
    async def _json(_: Request, exc: json.JSONDecodeError) -> JSONResponse:
        return _response(APIError(400, "the request body is not valid JSON", code="invalid_json"))

    @app.exception_handler(InvalidRequestError)
    async def _engine_invalid(_: Request, exc: InvalidRequestError) -> JSONResponse:
        if isinstance(exc, UnknownAdapterError):
            return _response(APIError(404, str(exc), type="not_found_error", param=exc.param))
        return _response(APIError(400, str(exc), param=exc.param))

    @app.exception_handler(EngineOverloadedError)
    async def _overloaded(_: Request, exc: EngineOverloadedError) -> JSONResponse:
        retry = str(max(1, round(exc.retry_after)))
        return _response(
            APIError(
                429,
                str(exc),
                type="rate_limit_error",
                code="overloaded",
                headers={"Retry-After": retry},
            )
        )

    @app.exception_handler(EngineError)
    async def _engine(_: Request, exc: EngineError) -> JSONResponse:
        return _response(APIError(500, str(exc), type="server_error"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _response(APIError(exc.status_code, str(exc.detail), type=kind))
