"""The caption judge's model endpoint (OpenAI, Azure OpenAI, any OpenAI-compatible server): its client, and
one real call before the service says it is ready.

A missing key is found by `CaptionJudgeSettings.preflight` without importing anything. A wrong key used to
pass: the service reported `ready: true`, training's health check passed and the run failed at its first
caption. So the entry script makes one real (one-token) chat call before it serves (`verify_upstream`):

- it succeeds: the service starts ready;
- the endpoint refuses the key (401/403) or does not know the model (404): `UpstreamRejected`, which the
  entry reports in one line with exit status 2;
- anything else (unreachable, 5xx, a timeout): the service starts anyway, but `/health` says
  `ready: false` until a call succeeds; `probe_until_verified` retries in the background (and any
  successful scoring call counts too).
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Callable, Optional

log = logging.getLogger("versavid_r1.judges.caption")

PROBE_TIMEOUT_S = 15.0  # one call at start-up; the service's own --request-timeout-s may be minutes
PROBE_BACKOFF_S = (0.5, 30.0)  # first and longest wait between background probes


class UpstreamRejected(ValueError):
    """The model endpoint refused the key or does not serve the model; the message says which."""


def endpoint(settings) -> str:
    return settings.azure_endpoint or settings.base_url or "api.openai.com"


def upstream_key(settings) -> Optional[str]:
    """The key the model endpoint gets: the configured variable (Azure: or AZURE_OPENAI_API_KEY); a local
    OpenAI-compatible server (`--base-url`) without one gets a placeholder."""
    key = os.environ.get(settings.upstream_api_key_env)
    if not key and settings.azure_endpoint:
        key = os.environ.get("AZURE_OPENAI_API_KEY")
    if not key and settings.base_url and not settings.azure_endpoint:
        key = "EMPTY"  # local servers without auth accept any key
    return key or None


def missing_key_message(settings) -> Optional[str]:
    """Why no key can be sent (None when there is one)."""
    if settings.backend != "openai" or upstream_key(settings):
        return None
    if settings.azure_endpoint:
        return (f"Azure OpenAI needs a key: set ${settings.upstream_api_key_env} or $AZURE_OPENAI_API_KEY "
                "(or --upstream-api-key-env NAME)")
    return (f"the OpenAI API needs a key: set ${settings.upstream_api_key_env} (or --upstream-api-key-env NAME), "
            "or give --base-url of a local OpenAI-compatible server, or use --backend lexical (no model)")


def make_openai_client(settings, asynchronous: bool = True, timeout_s: Optional[float] = None):
    """openai.(Async)OpenAI, or (Async)AzureOpenAI when an Azure endpoint is configured."""
    import openai

    key = upstream_key(settings)
    if key is None:
        raise RuntimeError(missing_key_message(settings))
    common = {"timeout": timeout_s or settings.request_timeout_s, "max_retries": settings.transport_retries,
              "api_key": key}
    if settings.azure_endpoint:
        cls = openai.AsyncAzureOpenAI if asynchronous else openai.AzureOpenAI
        return cls(azure_endpoint=settings.azure_endpoint, api_version=settings.api_version, **common)
    cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    return cls(base_url=settings.base_url, **common)


def _probe_kwargs(settings) -> dict:
    return {"model": settings.model, "messages": [{"role": "user", "content": "Reply with OK."}], "max_tokens": 1,
            "temperature": 0.0}


def _rejected(settings, exc) -> Optional[UpstreamRejected]:
    """The `UpstreamRejected` for a refused key or an unknown model, else None."""
    import openai

    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return UpstreamRejected(f"the model endpoint {endpoint(settings)} refused the key in "
                                f"${settings.upstream_api_key_env} (HTTP {exc.status_code}): set the right key")
    if isinstance(exc, openai.NotFoundError):
        return UpstreamRejected(f"the model endpoint {endpoint(settings)} has no model {settings.model!r} "
                                f"(HTTP 404): pass --model with a model it serves")
    return None


def _outcome(settings, exc: Exception) -> Optional[str]:
    """None when the call shows the key and model work (a 400 for the tiny request itself does), else why
    not; raises `UpstreamRejected` for a refused key or unknown model."""
    import openai

    rejected = _rejected(settings, exc)
    if rejected is not None:
        raise rejected from None
    if isinstance(exc, openai.BadRequestError):
        return None
    return f"{type(exc).__name__}: {exc}"


def verify_upstream(settings) -> Optional[str]:
    """One real call to the model endpoint (module docstring). None: it worked; a string: why it did not
    (transient; the service starts not ready); raises `UpstreamRejected` for a refused key or model."""
    import openai

    client = make_openai_client(settings, asynchronous=False, timeout_s=min(PROBE_TIMEOUT_S, settings.request_timeout_s))
    try:
        client.chat.completions.create(**_probe_kwargs(settings))
        return None
    except openai.OpenAIError as exc:
        return _outcome(settings, exc)
    finally:
        client.close()


async def probe_until_verified(client, settings, verified: Callable[[], bool], mark: Callable[[], None]) -> None:
    """Call the endpoint with growing pauses until one call succeeds (or `verified()` says a scoring call did)."""
    import openai

    delay = PROBE_BACKOFF_S[0]
    while not verified():
        try:
            await client.chat.completions.create(**_probe_kwargs(settings))
            reason = None
        except openai.OpenAIError as exc:
            rejected = _rejected(settings, exc)
            reason = str(rejected) if rejected else _outcome(settings, exc)
        if reason is None:
            log.info("the model endpoint %s answered: ready", endpoint(settings))
            mark()
            return
        log.warning("the model endpoint %s does not answer yet (%s); not ready, retrying in %.1f s",
                    endpoint(settings), reason, delay)
        await asyncio.sleep(delay)
        delay = min(PROBE_BACKOFF_S[1], delay * 2)
