"""`llmflow models`: the models this install can reach. The embedded ones, installed or
installable, with their size, licence and speed on this machine (measured once, on demand);
the configured providers and their prices."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .app import EXIT_FAILED, EXIT_OK, err, out

if TYPE_CHECKING:
    from ..settings import Settings


def register(app: typer.Typer) -> None:
    app.command("models")(models)


def models(
    measure: Annotated[
        bool,
        typer.Option(
            "--measure",
            help="Measure the speed of the installed local models not measured yet on this "
            "machine (a child process per model; the result is kept in the state directory).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the listing as JSON.")] = False,
) -> int:
    """List the models llmflow can run: the embedded local models (installed or how to install
    them, size, licence, prompt and generation tokens/s here), and the configured providers
    with their prices.

    Exit 0; 1 when --measure failed for a model.
    """
    from ..settings import Settings

    settings = Settings()
    listing, failed = _local_models(settings, measure=measure)
    result = {
        "default_model": settings.model,
        "local_models": listing,
        "providers": _providers(settings),
    }
    if as_json:
        out.print_json(json.dumps(result))
    else:
        _print(result)
    return EXIT_FAILED if failed else EXIT_OK


def _local_models(settings: Settings, *, measure: bool) -> tuple[list[dict[str, Any]], bool]:
    from ..errors import ConfigError
    from ..models.local_models import CATALOGUE, is_local, licence_path, models_dir
    from ..models.speed import cached_speed, measure_in_child

    cache = models_dir(settings.home) / "speed.json"
    entries: list[dict[str, Any]] = []
    failed = False
    names = [m.model_name for m in CATALOGUE.values()]
    if is_local(settings.model) and settings.model not in names:
        names.append(settings.model)  # a GGUF file the configuration names
    for name in names:
        known = CATALOGUE.get(name.removeprefix("local:") if name != "local" else "smollm2-135m")
        entry: dict[str, Any] = {
            "name": name,
            "title": known.title if known else None,
            "size_bytes": known.size if known else None,
            "licence": known.licence if known else None,
            "licence_file": None,
            "context_tokens": known.context_tokens if known else None,
            "install": known.install if known else None,
            "installed": False,
            "path": None,
            "speed": None,
            "problem": None,
        }
        if known is not None:
            shipped = licence_path(known)
            entry["licence_file"] = str(shipped) if shipped else None
        try:
            found = _ready(name, settings.home, join=measure)
        except ConfigError as e:
            entry["problem"] = str(e)
            entries.append(entry)
            continue
        entry["installed"] = True
        if found is not None:
            path, context = found
            entry["path"] = str(path)
            entry["context_tokens"] = context
            entry["size_bytes"] = path.stat().st_size
            speed = cached_speed(cache, path)
            if speed is None and measure:
                err.print(f"measuring {name} ...", highlight=False)
                try:
                    speed = measure_in_child(cache, path, context)
                except RuntimeError as e:
                    entry["problem"] = str(e)
                    failed = True
            entry["speed"] = speed
        entries.append(entry)
    return entries, failed


def _ready(name: str, home: Path, *, join: bool) -> tuple[Path, int] | None:
    """The model's file and context when it is ready to load; None when it is installed but
    its chunks are not joined yet (and `join` is false). Raises ConfigError when it is not
    installed (or its chunks do not verify)."""
    from ..models.local_models import (
        CATALOGUE,
        chunk_files,
        is_verified,
        models_dir,
        resolve_local,
    )

    known = CATALOGUE.get(name.removeprefix("local:"))
    if known is not None and known.parts and not join:
        target = models_dir(home) / known.file
        if not is_verified(known, target):
            chunk_files(known)  # raises when not installed
            return None
    found = resolve_local(name, home)
    return found.path, found.context_tokens


def _providers(settings: Settings) -> list[dict[str, Any]]:
    from ..models.client import Usage
    from ..models.pricing import Pricing

    pricing = Pricing(settings)
    million_in, million_out = Usage(input_tokens=1_000_000), Usage(output_tokens=1_000_000)

    def per_mtok(model: str) -> dict[str, str | None]:
        cost_in, cost_out = pricing.cost_of(model, million_in), pricing.cost_of(model, million_out)
        return {
            "input_per_mtok": None if cost_in is None else _dollars(cost_in),
            "output_per_mtok": None if cost_out is None else _dollars(cost_out),
        }

    local_price = {
        **per_mtok("local"),
        "per_hour": None
        if settings.local_price_per_hour is None
        else _dollars(settings.local_price_per_hour),
    }
    providers: list[dict[str, Any]] = [
        {
            "name": "local",
            "configured": True,
            "detail": "in-process (LLMFLOW_LOCAL_PRICE_PER_MTOK or _PER_HOUR prices it)",
            "price": local_price,
        }
    ]
    key = settings.openai_api_key is not None
    model = settings.model
    openai: dict[str, Any] = {
        "name": "openai",
        "configured": key,
        "detail": "OPENAI_API_KEY is set (not shown)" if key else "OPENAI_API_KEY is not set",
        "price": None,
    }
    if model.startswith("openai:"):
        openai["model"] = model
        openai["price"] = per_mtok(model)
    providers.append(openai)
    if settings.base_url:
        from ..models.gateway import redact_url

        served = model if ":" not in model else None
        endpoint: dict[str, Any] = {
            "name": "endpoint",
            "configured": True,
            "detail": f"OPENAI_BASE_URL {redact_url(settings.base_url)}",
            "price": None,
        }
        if served:
            endpoint["model"] = served
            cost_in = pricing.cost("compatible", served, million_in, 0.0)
            cost_out = pricing.cost("compatible", served, million_out, 0.0)
            endpoint["price"] = {
                "input_per_mtok": None if cost_in is None else _dollars(cost_in),
                "output_per_mtok": None if cost_out is None else _dollars(cost_out),
            }
        providers.append(endpoint)
    return providers


def _dollars(amount: Decimal) -> str:
    return f"{amount.normalize():f}"


def _print(result: dict[str, Any]) -> None:
    def line(text: str) -> None:
        out.print(text, highlight=False, soft_wrap=True)

    line(f"default model: [bold]{escape(result['default_model'])}[/]")
    line("\n[bold]local models[/] (in-process llama.cpp)")
    width = max(27, *(len(m["name"]) + 2 for m in result["local_models"]))
    for m in result["local_models"]:
        size = m["size_bytes"]
        about = [
            m["title"] or m["path"] or "",
            *([f"{size / 1e6:,.0f} MB"] if size else []),
            *([m["licence"]] if m["licence"] else []),
        ]
        line(f"  [bold]{escape(m['name']):<{width}}[/]{escape(', '.join(about))}")
        if not m["installed"]:
            state = f"[yellow]not installed[/]: {escape(m['install'] or m['problem'] or '')}"
            if m["install"] is None and m["problem"]:
                state = f"[red]{escape(m['problem'])}[/]"
        else:
            state = "installed" if m["path"] else "installed (joined and verified on first use)"
            speed = m["speed"]
            if speed:
                state += (
                    f" · {speed['prompt_tokens_per_s']:g} / {speed['generation_tokens_per_s']:g}"
                    " tokens/s prompt / generation"
                )
            elif m["problem"]:
                state += f" · [red]{escape(m['problem'])}[/]"
            else:
                state += " · speed not measured: llmflow models --measure"
        line(f"  {'':<{width}}{state}")
    line(f"  {'local:/path/to/model.gguf':<{width}}any GGUF chat model on disk")
    line("\n[bold]providers[/]")
    for p in result["providers"]:
        price = p["price"]
        text = p["detail"] + (f"; model {p['model']}" if p.get("model") else "")
        if price:
            text += (
                f"; ${price['input_per_mtok'] or '?'} / ${price['output_per_mtok'] or '?'}"
                " per million input / output tokens"
            )
            if price.get("per_hour"):
                text += f" + ${price['per_hour']} per hour"
        line(f"  [bold]{p['name']:<9}[/]{escape(text)}")
