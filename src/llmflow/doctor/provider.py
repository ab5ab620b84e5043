"""The provider's checks: the default model resolves; for a remote provider, the key, the
endpoint (reachable, serving the model) and the model's price."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .check import Check

if TYPE_CHECKING:
    from ..models.gateway import Gateway
    from ..settings import Settings

HTTP_TIMEOUT_S = 3.0
OPENAI_URL = "https://api.openai.com/v1"


def check_local_model(settings: Settings) -> Check:
    """`local:<name-or-path>` resolves to a GGUF chat model (a chunked one joined and
    verified by hash, which takes a while the first time only)."""
    from ..errors import ConfigError
    from ..models.local_models import resolve_local

    try:
        found = resolve_local(settings.model, settings.home)
    except ConfigError as e:
        fix = "set LLMFLOW_MODEL (or --model) to a model `llmflow models` lists as installed"
        return Check("model", "fail", str(e), fix)
    return Check("model", "ok", f"{settings.model}: {found.path} (no provider, no key)")


def check_provider(settings: Settings) -> list[Check]:
    """The default model resolves; for a remote provider, the key, the endpoint (reachable,
    serving the model) and the model's price."""
    model = settings.model
    if model == "local":
        return [Check("model", "ok", "local: the embedded model (no provider, no key)")]
    if model.startswith("local:"):
        return [check_local_model(settings)]
    import asyncio

    from ..errors import ConfigError, MissingCredentialsError
    from ..models.gateway import Gateway, redact_url

    key = settings.openai_api_key
    base_url = settings.base_url
    gateway = Gateway(settings)
    try:
        client, model_id = gateway.resolve(model)
    except MissingCredentialsError:
        return [
            Check(
                "api key",
                "fail",
                f"OPENAI_API_KEY is not set, and {model} needs it",
                "export OPENAI_API_KEY=sk-... (or put it in .env), or LLMFLOW_MODEL=local "
                "for the embedded model",
            )
        ]
    except ConfigError as e:
        return [Check("model", "fail", str(e), "set LLMFLOW_MODEL (or --model) to one of those")]
    finally:
        asyncio.run(gateway.aclose())
    checks = [
        Check("api key", "ok", "OPENAI_API_KEY is set (not shown)")
        if key is not None
        else Check(
            "api key",
            "ok",
            "OPENAI_API_KEY is not set: requests to the base URL carry a placeholder, "
            "which self-hosted servers accept",
        )
    ]
    where = (redact_url(base_url) if "://" in base_url else base_url) if base_url else "OpenAI"
    checks.append(Check("model", "ok", f"{model}: {model_id} at {where}"))
    endpoint = check_endpoint(
        base_url or OPENAI_URL, model_id, key.get_secret_value() if key else None
    )
    checks.append(endpoint)
    if endpoint.failed:
        return checks
    checks.append(check_price(gateway, client.provider, model, model_id))
    return checks


def check_endpoint(base_url: str, model_id: str, key: str | None) -> Check:
    """`GET <base_url>/models` answers within a few seconds, and lists `model_id`."""
    from ..models.gateway import redact_url

    name = "endpoint"
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return Check(
            name,
            "fail",
            f"the base URL {base_url!r} needs an http:// or https:// scheme and a host",
            "set OPENAI_BASE_URL (or --base-url) like http://localhost:11434/v1",
        )
    shown = redact_url(base_url)
    url = base_url.rstrip("/") + "/models"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            body = response.read(1_000_000)
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            return Check(
                name,
                "fail",
                f"{shown} refused the key (HTTP {e.code})",
                "set OPENAI_API_KEY to a valid key for this endpoint",
            )
        if e.code in (404, 405, 501):
            return Check(
                name,
                "ok",
                f"{shown} is reachable (it lists no models: HTTP {e.code}, so "
                f"{model_id} is not checked)",
            )
        return Check(name, "warn", f"{shown} answered HTTP {e.code} to GET /models")
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        return Check(
            name,
            "fail",
            f"cannot reach {shown}: {reason}",
            "start the server, or correct OPENAI_BASE_URL (or --base-url)"
            if base_url != OPENAI_URL
            else "check the network connection (and HTTPS_PROXY if one is needed)",
        )
    try:
        listed = [str(m.get("id")) for m in json.loads(body).get("data", [])]
    except (ValueError, AttributeError):
        return Check(name, "ok", f"{shown} is reachable (its model list did not parse)")
    if model_id in listed:
        return Check(name, "ok", f"{shown} is reachable and serves {model_id}")
    sample = ", ".join(listed[:8]) + (", ..." if len(listed) > 8 else "")
    return Check(
        name,
        "warn",
        f"{shown} is reachable but does not list {model_id} (it lists: {sample or 'nothing'})",
        "set LLMFLOW_MODEL (or --model) to a model the endpoint serves",
    )


def check_price(gateway: Gateway, provider: str, model: str, model_id: str) -> Check:
    from decimal import Decimal

    from ..models.client import Usage
    from ..models.pricing import format_cost

    million = 1_000_000
    per_in = gateway.pricing.cost(provider, model_id, Usage(input_tokens=million), 0.0)
    per_out = gateway.pricing.cost(provider, model_id, Usage(output_tokens=million), 0.0)
    if per_in is None or per_out is None:
        return Check(
            "price",
            "warn",
            f"no price known for {model}: its cost shows as unknown, and "
            "--max-cost cannot bound it",
            "use a model genai-prices knows; for a self-hosted endpoint, "
            "LLMFLOW_LOCAL_PRICE_PER_MTOK sets one",
        )
    if per_in == per_out == Decimal(0):
        return Check(
            "price", "ok", f"{model}: $0 (self-hosted; LLMFLOW_LOCAL_PRICE_PER_MTOK sets one)"
        )
    return Check(
        "price",
        "ok",
        f"{model}: {format_cost(per_in)} in, {format_cost(per_out)} out per million tokens",
    )


# -- everything -------------------------------------------------------------------------------
