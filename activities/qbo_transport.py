"""The HTTP under python-quickbooks: its requests to QBO sent through one urllib3 pool per worker process.

python-quickbooks reads two things of an answer, its status and its text. Sending through requests cost about
0.6 ms of CPU a call (per call it merges session settings, runs hooks and cookies, and newer requests checks
typing protocols), urllib3 itself about half of that: under load requests was a sixth of the worker's
interpreter time (py-spy --gil, 2026-12-07). What requests takes from the environment (the proxy for QBO's host
unless no_proxy exempts it, a CA bundle) is read the way requests reads it, once, when the transport is made."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import requests
import urllib3

from activities.tls import TLS

# What requests sends unless told otherwise; QBO compresses its answers when asked.
DEFAULT_HEADERS = {"Accept-Encoding": "gzip, deflate"}


@dataclass(frozen=True)
class QboAnswer:
    """What python-quickbooks reads of a response."""

    status_code: int
    text: str


class QboTransport:
    def __init__(self, base_url: str, connections: int) -> None:
        """`connections` kept open to QBO's host: one for each activity thread that may call at once."""
        found = requests.Session().merge_environment_settings(base_url, {}, None, None, None)
        verify = found["verify"]
        # requests' default CA bundle is certifi's, which TLS trusts; REQUESTS_CA_BUNDLE names another.
        tls: dict[str, Any] = {"ca_certs": verify} if isinstance(verify, str) else {"ssl_context": TLS}
        pool: dict[str, Any] = {"maxsize": connections, "block": False, "retries": False, **tls}
        proxy = requests.utils.select_proxy(base_url, found["proxies"])
        self._pool = urllib3.ProxyManager(proxy, proxy_headers=_proxy_credentials(proxy), **pool) if proxy \
            else urllib3.PoolManager(**pool)

    def request(self, method: str, url: str, headers: dict[str, str], params: dict[str, Any] | None,
                data: str | bytes | None, timeout: float) -> QboAnswer:
        """One request as python-quickbooks makes it (query parameters, a text body), never retried or
        redirected here: the activity's retry policy decides. Raises urllib3's HTTPError when QBO cannot be
        reached or its answer read."""
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        body = data.encode() if isinstance(data, str) else data or None
        answer = self._pool.request(method, url, body=body, headers={**DEFAULT_HEADERS, **headers},
                                    timeout=urllib3.Timeout(connect=timeout, read=timeout), redirect=False)
        return QboAnswer(answer.status, answer.data.decode("utf-8", errors="replace"))


def _proxy_credentials(proxy: str) -> dict[str, str] | None:
    """The Proxy-Authorization a proxy URL's user and password make, as requests sends it."""
    parts = urlsplit(proxy)
    if not parts.username:
        return None
    return urllib3.make_headers(proxy_basic_auth=f"{unquote(parts.username)}:{unquote(parts.password or '')}")
