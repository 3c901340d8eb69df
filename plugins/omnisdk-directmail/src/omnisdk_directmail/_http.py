"""Lob's error answers as provider outcomes, through the core's shared HTTP error mapping."""

from __future__ import annotations

from typing import Any

import httpx

from omnisdk.providers import PermanentError, RetryableError, http_error_outcome, retry_after_seconds

__all__ = ["error_outcome"]


def error_outcome(response: httpx.Response, now: float) -> RetryableError | PermanentError:
    """Lob's `{"error": {"message", "code"}}` mapped like any HTTP error (429/5xx retryable)."""
    try:
        error: Any = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        reason, code = str(error.get("message") or response.reason_phrase), error.get("code")
    else:
        reason, code = f"HTTP {response.status_code} {response.reason_phrase}", None
    return http_error_outcome(response.status_code, f"Lob: {reason}", code=code,
                              retry_after=retry_after_seconds(response.headers.get("Retry-After"), now))
