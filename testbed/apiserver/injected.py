"""What a kube-apiserver answers while the testbed's `apiserver-error CODE` fault is on, or while
its etcd has no quorum."""

from __future__ import annotations

from aiohttp import web

from testbed.apiserver.errors import ApiError

RETRY_AFTER_S = 1


class TooManyRequests(ApiError):
    """429 with `Retry-After`, the header client-go and the Python client wait on."""

    def __init__(self) -> None:
        super().__init__(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            details={"retryAfterSeconds": RETRY_AFTER_S},
        )

    def response(self) -> web.Response:
        response = super().response()
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response


def injected_error(code: int) -> ApiError:
    """The Status a kube-apiserver answers with `code` (as apimachinery's NewInternalError,
    NewTooManyRequests, NewServiceUnavailable and NewTimeoutError word them)."""
    if code == 429:
        return TooManyRequests()
    if code == 503:
        return ApiError(503, "ServiceUnavailable", "The server is currently unavailable")
    if code == 504:
        return ApiError(
            504, "Timeout", "Timeout: request did not complete within the allowed duration"
        )
    return ApiError(code, "InternalError", "Internal error occurred: testbed fault")


def needs_storage(path: str) -> bool:
    """Resource requests (`/api/v1/nodes`, `/apis/apps/v1/...`) read or write etcd; discovery
    (`/api`, `/apis/apps/v1`), `/version` and the probes are served from memory."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        return len(parts) >= 3
    return parts[0] == "apis" and len(parts) >= 4


def storage_unavailable() -> ApiError:
    """What kube-apiserver answers once its etcd client gives up on a cluster without quorum
    (apiserver's storage error for etcd's ErrTimeout)."""
    return ApiError(500, "InternalError", "etcdserver: request timed out")
