"""gRPC status -> HTTP status, with the service's own message in a JSON body:
`{"error": {"code": "INVALID_ARGUMENT", "message": "..."}}`."""

from __future__ import annotations

import grpc
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

HTTP_OF = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409, grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413, grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
# RESOURCE_EXHAUSTED is a request too large (413) unless it says the service is busy (429).
BUSY = ("too many", "concurrent rpc limit")


class HttpError(Exception):
    """An error the gateway itself answers (a form field that is not a number, ...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad_request(message: str) -> HttpError:
    return HttpError(400, "INVALID_ARGUMENT", message)


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def http_status(code: grpc.StatusCode, message: str) -> int:
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and any(w in message.lower() for w in BUSY):
        return 429
    return HTTP_OF.get(code, 500)


async def rpc_error(_: Request, exc: grpc.RpcError) -> JSONResponse:
    code, message = exc.code(), exc.details() or ""
    return JSONResponse(error_body(code.name, message), status_code=http_status(code, message))


async def http_error(_: Request, exc: HttpError) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)


async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return JSONResponse(error_body("INVALID_ARGUMENT", problems), status_code=400)


async def http_exception(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "NOT_FOUND", 405: "UNIMPLEMENTED"}.get(exc.status_code, "INVALID_ARGUMENT")
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)


def install(app) -> None:
    app.add_exception_handler(grpc.RpcError, rpc_error)
    app.add_exception_handler(HttpError, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_exception)
