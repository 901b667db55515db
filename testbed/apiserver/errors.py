"""Kubernetes `Status` failures: the one error type the fake apiserver raises and answers with."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def json_response(body: dict[str, Any], *, status: int = 200) -> web.Response:
    # Bytes, not text: aiohttp would append "; charset=utf-8", which client-go's decoder
    # negotiation rejects for Status bodies (kubectl then prints a generic message).
    return web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json"
    )


class ApiError(Exception):
    """A request the apiserver refuses; rendered as a `Status` object with `code`."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    def response(self) -> web.Response:
        return json_response(self.status(), status=self.code)


def not_found(resource: str, name: str, *, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        404,
        "NotFound",
        f'{qualified} "{name}" not found',
        details={"name": name, "group": group, "kind": resource},
    )


def already_exists(resource: str, name: str, *, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified} "{name}" already exists',
        details={"name": name, "group": group, "kind": resource},
    )


def conflict(resource: str, name: str, *, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details={"name": name, "group": group, "kind": resource},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(message: str = "the server does not allow this method") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def invalid_object(
    kind: str, group: str, name: str, errors: list[tuple[str, Any, str]]
) -> ApiError:
    """A 422 shaped as apimachinery's NewInvalid: one message, one cause per field error."""
    causes, texts = [], []
    for path, value, detail in errors:
        required = detail == "Required value"
        text = detail if required else f"Invalid value: {value}: {detail}"
        causes.append(
            {
                "reason": "FieldValueRequired" if required else "FieldValueInvalid",
                "message": text,
                "field": path,
            }
        )
        texts.append(f"{path}: {text}")
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {joined}',
        details={"name": name, "group": group, "kind": kind, "causes": causes},
    )
