"""The wait an HTTP answer asks for (a 429's or a 503's Retry-After, in seconds), for every client that retries."""

import httpx


def retry_after(response: httpx.Response, default: float) -> float:
    """Retry-After in seconds, or `default` when the answer gives none a client can read."""
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return default
