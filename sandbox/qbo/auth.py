"""The sandbox's OAuth 2.0 side: companies connected with a refresh token, rotating refresh, bearer checks."""

import secrets
import threading
import time
from dataclasses import dataclass

ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 100 * 24 * 3600


@dataclass
class _Grant:
    realm_id: str
    expires_at: float


class TokenAuthority:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}

    def snapshot(self) -> dict[str, dict[str, list[object]]]:
        with self._lock:
            return {kind: {token: [g.realm_id, g.expires_at] for token, g in grants.items()}
                    for kind, grants in (("access", self._access), ("refresh", self._refresh))}

    def restore(self, data: dict[str, dict[str, list[object]]]) -> None:
        with self._lock:
            for kind, grants in (("access", self._access), ("refresh", self._refresh)):
                grants.update({t: _Grant(str(r), float(e)) for t, (r, e) in data.get(kind, {}).items()})

    def connect(self, realm_id: str) -> str:
        """What the OAuth authorization-code exchange ends with: a refresh token for the company."""
        token = "RT-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[token] = _Grant(realm_id, time.time() + REFRESH_TOKEN_SECONDS)
        return token

    def refresh(self, refresh_token: str) -> dict[str, object] | None:
        """Rotate: the old refresh token stops working, a new pair is returned. None means invalid_grant."""
        with self._lock:
            grant = self._refresh.pop(refresh_token, None)
            if grant is None or grant.expires_at < time.time():
                return None
            access = "AT-" + secrets.token_urlsafe(24)
            new_refresh = "RT-" + secrets.token_urlsafe(24)
            self._access[access] = _Grant(grant.realm_id, time.time() + ACCESS_TOKEN_SECONDS)
            self._refresh[new_refresh] = _Grant(grant.realm_id, time.time() + REFRESH_TOKEN_SECONDS)
        return {
            "token_type": "bearer",
            "access_token": access,
            "refresh_token": new_refresh,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "x_refresh_token_expires_in": REFRESH_TOKEN_SECONDS,
        }

    def allows(self, authorization: str | None, realm_id: str) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        with self._lock:
            grant = self._access.get(authorization.removeprefix("Bearer ").strip())
        return grant is not None and grant.realm_id == realm_id and grant.expires_at > time.time()

    def expire_access(self, realm_id: str) -> int:
        """End every access token of the company now, as its hour running out would; returns how many."""
        with self._lock:
            ended = [token for token, grant in self._access.items() if grant.realm_id == realm_id]
            for token in ended:
                del self._access[token]
        return len(ended)
