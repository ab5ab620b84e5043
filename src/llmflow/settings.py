"""Settings from the environment and a `.env` file in the working directory.

Environment variables win over `.env`; command-line flags win over both (the CLI passes
them as overrides).
"""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "local"
"""With nothing configured, llmflow runs the embedded model: never a paid provider by surprise."""


def base_url_problem(url: str) -> str | None:
    """What is wrong with an endpoint URL (`localhost:8000/v1` has no scheme), or None."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    if "://" not in url:
        return f"{url!r} has no scheme: give the full URL, e.g. http://{url}"
    return f"{url!r} is not an http:// or https:// URL"


def env_file_problem(path: Path) -> str | None:
    """The first line of the .env file `path` that is not `NAME=value` (python-dotenv would
    skip it, and the setting it meant would silently keep its default), as file:line."""
    if not path.is_file():
        return None
    from dotenv.parser import parse_stream

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            words = binding.original.string.split()
            start = words[0][:40] if words else ""  # not the whole line: it may hold a key
            return (
                f"{path}:{binding.original.line}: cannot read the line starting {start!r}: "
                "write NAME=value (e.g. LLMFLOW_TIMEOUT=60), or # before a comment"
            )
    return None


class Settings(BaseSettings):
    """llmflow's configuration."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    home: Path = Field(
        default_factory=lambda: Path.home() / ".llmflow", validation_alias="LLMFLOW_HOME"
    )
    """The state directory: the run store and other local state."""
    model: str = Field(default=DEFAULT_MODEL, validation_alias="LLMFLOW_MODEL")
    """Default model for steps that name none: `local`, `local:<name-or-path.gguf>`,
    `openai:<model>`, or a model served at `base_url`."""
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    """Key for OpenAI or an OpenAI-compatible endpoint. Never stored or logged."""
    base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    """An OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server)."""
    imap_password: SecretStr | None = Field(default=None, validation_alias="LLMFLOW_IMAP_PASSWORD")
    """The password or app password of the IMAP account an `imaps://` input names. Never
    stored or logged."""
    smtp_password: SecretStr | None = Field(default=None, validation_alias="LLMFLOW_SMTP_PASSWORD")
    """The password or app password of the SMTP account approved replies are sent from
    (`--send-replies`); `LLMFLOW_IMAP_PASSWORD` when unset. Never stored or logged."""
    timeout_s: float = Field(default=120.0, gt=0, validation_alias="LLMFLOW_TIMEOUT")
    """Timeout of one model call, in seconds."""
    max_retries: int = Field(default=4, ge=0, le=20, validation_alias="LLMFLOW_MAX_RETRIES")
    """Retries of a transient provider error (rate limit, timeout, 5xx)."""
    max_concurrency: int | None = Field(
        default=None, ge=1, validation_alias="LLMFLOW_MAX_CONCURRENCY"
    )
    """Calls in flight at once to one remote provider; unset: adaptive, from 256 down when
    the provider rate-limits (`models.gateway.AdaptiveLimit`)."""
    rpm: int | None = Field(default=None, ge=1, validation_alias="LLMFLOW_RPM")
    """Requests per minute to one remote provider (unlimited when unset)."""
    tpm: int | None = Field(default=None, ge=1, validation_alias="LLMFLOW_TPM")
    """Tokens per minute to one remote provider (unlimited when unset)."""
    max_item_mb: float = Field(default=20.0, gt=0, validation_alias="LLMFLOW_MAX_ITEM_MB")
    """The largest input item, in megabytes of text: a bigger one fails with a clear error
    (the batch goes on)."""
    output_repairs: int = Field(default=2, ge=0, le=10, validation_alias="LLMFLOW_OUTPUT_REPAIRS")
    """Times an llm step sends an invalid structured output back with the validation error
    before it fails."""
    breaker_window: int = Field(default=20, ge=0, validation_alias="LLMFLOW_BREAKER_WINDOW")
    """A provider's circuit breaker opens when `breaker_share` of its last `breaker_window`
    requests failed (0: only connection refused and 401/403/404 open it)."""
    breaker_share: float = Field(default=0.8, gt=0, le=1, validation_alias="LLMFLOW_BREAKER_SHARE")
    """The share of failed requests among the last `breaker_window` that opens the breaker."""
    reply_signature: str = Field(
        default="Northwind Outfitters", validation_alias="LLMFLOW_REPLY_SIGNATURE"
    )
    """How drafted replies are signed (the email-triage app): our name, never the sender's."""

    local_price_per_mtok: Decimal | None = Field(
        default=None, ge=0, validation_alias="LLMFLOW_LOCAL_PRICE_PER_MTOK"
    )
    """Dollars per million tokens on the embedded model or a self-hosted endpoint (default $0)."""
    local_price_per_hour: Decimal | None = Field(
        default=None, ge=0, validation_alias="LLMFLOW_LOCAL_PRICE_PER_HOUR"
    )
    """Dollars per hour of compute on the embedded model or a self-hosted endpoint."""

    embedded_prefix_reuse: bool = Field(
        default=True, validation_alias="LLMFLOW_EMBEDDED_PREFIX_REUSE"
    )
    """Let the embedded model reuse the previous prompt's shared prefix (faster; set 0 for
    answers that repeat exactly whatever ran before)."""

    @model_validator(mode="before")
    @classmethod
    def _a_readable_env_file(cls, data: Any) -> Any:
        env_file = cls.model_config.get("env_file")  # the file pydantic-settings reads
        problem = env_file_problem(Path(env_file)) if isinstance(env_file, str) else None
        if problem:
            raise ValueError(problem)
        return data

    @field_validator("base_url")
    @classmethod
    def _an_http_url(cls, value: str | None) -> str | None:
        problem = None if value is None else base_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def db_path(self) -> Path:
        """The SQLite run store."""
        return self.home / "llmflow.db"
