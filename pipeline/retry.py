"""Retrying transient store errors with backoff.

A store on the network has bad moments: a restarting S3 endpoint, a dropped
connection, a throttled request.  Those must not fail a cell that has been
queued for an hour, so every store operation goes through `retry_call`, which
retries errors that look transient (connection refused or reset, timeouts,
HTTP 5xx, throttling) with exponential backoff until a time budget is spent
(`execution.store_retry_s`, default 180 s).  Errors that retrying cannot fix
(a missing file, a create-only write that lost, access denied) are raised at once.
"""

from __future__ import annotations

import errno
import sys
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")

DEFAULT_RETRY_S = 180.0
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0

# Exception class names (anywhere in the MRO or the cause chain) that mean "try again later".
_TRANSIENT_NAMES = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ProxyConnectionError",
    "ResponseStreamingError",
    "IncompleteReadError",
    "ClientConnectorError",
    "ClientConnectionError",
    "ClientOSError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "FSTimeoutError",
    "HTTPClientError",
}
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
    "502",
    "504",
}
_TRANSIENT_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EPIPE,
    errno.EAGAIN,
    errno.ESTALE,
    errno.EIO,
}
_PERMANENT = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_transient(error: BaseException) -> bool:
    """True when retrying the same store operation later may succeed."""
    if isinstance(error, _PERMANENT):
        return False
    for item in _chain(error):
        if isinstance(item, (ConnectionError, TimeoutError)):
            return True
        if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(item).__mro__):
            return True
        if isinstance(item, OSError) and item.errno in _TRANSIENT_ERRNOS:
            return True
        response = getattr(item, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if code in _TRANSIENT_CODES or int(status) >= 500:
                return True
    return False


def retry_call(
    function: Callable[..., T],
    *args: Any,
    budget_s: float = DEFAULT_RETRY_S,
    what: str = "store operation",
    **kwargs: Any,
) -> T:
    """Call `function`, retrying transient errors with exponential backoff for up to `budget_s` seconds."""
    deadline = time.monotonic() + max(0.0, budget_s)
    delay = FIRST_DELAY_S
    announced = False
    while True:
        try:
            return function(*args, **kwargs)
        except Exception as error:
            if not is_transient(error) or time.monotonic() + delay > deadline:
                raise
            if not announced:
                print(
                    f"sparsepipe: {what} failed ({type(error).__name__}: {error}); retrying for up to {budget_s:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
                announced = True
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
