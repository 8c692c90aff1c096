"""Who may read an account: callers present an API key (models/api_keys.py) in `X-API-Key` or as
`Authorization: Bearer <key>`. A franchisee's key reads its own account; a franchisor's key reads each of its
franchisees'. The key is checked before the account is even looked up, so without a key nobody can learn
which accounts exist."""

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from models.accounts import Franchisee, Franchisor
from models.api_keys import ApiKey, authorize

API_KEY_HEADER = "X-API-Key"
api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, scheme_name="ApiKey",
                              description="a Ledgerflow API key (`starter.py keys create`)")
bearer = HTTPBearer(auto_error=False, scheme_name="Bearer", description="the same API key, as a bearer token")
CHALLENGE = f'Bearer realm="ledgerflow", APIKey header="{API_KEY_HEADER}"'

# The answers every route behind `AccountReader` can give, for its OpenAPI `responses`.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": f"missing, unknown or revoked API key ({API_KEY_HEADER} or Authorization: Bearer)"},
    403: {"description": "the key is valid but not for this account"},
    404: {"description": "unknown account (only answered to a valid key)"},
}


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": CHALLENGE})


def api_caller(request: Request, header_key: Annotated[str | None, Security(api_key_header)],
               bearer_key: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> ApiKey:
    """The live key the request carries, or 401. A sync dependency: FastAPI runs it off the event loop, so
    the database look-up never blocks other requests."""
    key = header_key or (bearer_key.credentials if bearer_key else None)
    if not key:
        raise _unauthorized(f"an API key is required: {API_KEY_HEADER} header or Authorization: Bearer")
    found = authorize(request.app.state.engine, key.strip())
    if found is None:
        raise _unauthorized("unknown or revoked API key")
    return found


def account_reader(account_id: str, request: Request, caller: Annotated[ApiKey, Depends(api_caller)]) -> ApiKey:
    """The caller's key when it may read the franchisee account `account_id` (a path parameter): 404 for an
    unknown account, but only once the key is known good; 403 for an account the key does not cover."""
    with Session(request.app.state.engine) as session:
        franchisee = session.get(Franchisee, account_id)
    if franchisee is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown account {account_id!r}")
    allowed = (caller.account_id == account_id if caller.scope == "franchisee"
               else caller.scope == "franchisor" and caller.account_id == franchisee.franchisor_id)
    if not allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key may not read this account")
    return caller


AccountReader = Annotated[ApiKey, Depends(account_reader)]


def franchisor_reader(franchisor_id: str, request: Request, caller: Annotated[ApiKey, Depends(api_caller)]) -> ApiKey:
    """The caller's key when it is the franchisor `franchisor_id`'s own: 404 for an unknown franchisor, but only
    once the key is known good; 403 for any other key, its franchisees' included (they read only themselves)."""
    with Session(request.app.state.engine) as session:
        franchisor = session.get(Franchisor, franchisor_id)
    if franchisor is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown franchisor {franchisor_id!r}")
    if caller.scope != "franchisor" or caller.account_id != franchisor_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key may not read this franchisor")
    return caller


FranchisorReader = Annotated[ApiKey, Depends(franchisor_reader)]
