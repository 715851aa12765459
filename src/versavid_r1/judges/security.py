"""What keeps the judge services safe by default: bearer auth, body size limit, clear 4xx errors.

- Bearer auth: when an API key is configured (flag or VERSAVID_JUDGE_API_KEY), every scoring and
  chat endpoint needs `Authorization: Bearer <key>` (compared in constant time); 401 otherwise.
  `/health` and the OpenAPI docs stay open (they reveal only the model name).
- Body size: requests whose body exceeds `max_body_bytes` get 413 before any parsing, whether they
  announce a Content-Length or stream chunks (FastAPI's `max_body_size`).
- Field sizes and text: `check_text` raises 422 naming the field: longer than the limit, or not
  encodable as UTF-8 (a lone surrogate such as "\\ud800", which JSON can carry but no tokenizer or
  upstream API accepts: not an outage to retry). These and the other limits answer `OverLimit` (a 422
  whose body says `"over_limit": true`), so a client can skip the item instead of stopping.
- Malformed requests (bad JSON, missing fields, wrong types) get 422 with a one-line `message` next
  to FastAPI's usual `detail` list.
"""
from __future__ import annotations

import hmac
from typing import Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..protocol import OVER_LIMIT_KEY

_bearer = HTTPBearer(auto_error=False)


def make_auth_dependency(api_key: Optional[str]):
    """A FastAPI dependency enforcing `Authorization: Bearer <api_key>` (a no-op without a key)."""
    expected = api_key.encode() if api_key else None

    async def require_api_key(request: Request) -> None:
        if expected is None:
            return
        creds: Optional[HTTPAuthorizationCredentials] = await _bearer(request)
        if creds is None or not hmac.compare_digest(creds.credentials.encode(), expected):
            raise HTTPException(status_code=401, detail="missing or invalid bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return require_api_key


class OverLimit(HTTPException):
    """422 for a request or item over one of the service's limits (or text no tokenizer takes); its body
    says `"over_limit": true` (versavid_r1.protocol), so a client can tell it from a malformed request."""

    def __init__(self, detail: str):
        super().__init__(status_code=422, detail=detail)


def check_text(name: str, value: Optional[str], limit: int, flag: str = "--max-field-chars") -> None:
    if value is None:
        return
    if len(value) > limit:
        raise OverLimit(f"field '{name}' has {len(value)} characters, more than the limit of {limit} ({flag})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise OverLimit(f"field '{name}' is not valid Unicode text: a lone surrogate {value[exc.start]!r} at "
                        f"character {exc.start}") from None


def _summarise(errors) -> str:
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "malformed request: " + "; ".join(parts) + more


def install_security(app: FastAPI) -> None:
    """A 422 handler with a readable message. (The body limit is FastAPI's own `max_body_size`,
    set where the app is created: see `new_app`.)"""

    @app.exception_handler(OverLimit)
    async def _over_limit(request: Request, exc: OverLimit):
        return JSONResponse(status_code=422, content={"detail": exc.detail, OVER_LIMIT_KEY: True})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        safe = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
        return JSONResponse(status_code=422, content={"message": _summarise(errors), "detail": safe})


def new_app(title: str, description: str, max_body_bytes: int, lifespan) -> FastAPI:
    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan,
                  max_body_size=int(max_body_bytes))
    install_security(app)
    return app
