"""Every example runs, here with the scripted model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from llmflow import run
from llmflow.testing import ScriptedModel, scripted_gateway

EXAMPLES = Path(__file__).parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def test_chain_example() -> None:
    example = load("chain")
    model = ScriptedModel(["A light tent for two.", "Light. Fast. Yours."])
    product = example.Product(name=" Tent ", features="light")
    out = await run(example.build(), product, gateway=scripted_gateway(model))
    assert (out.name, out.blurb, out.tagline) == (
        "Tent",
        "A light tent for two.",
        "Light. Fast. Yours.",
    )
    assert "Product: Tent" in (model.requests[0].messages[-1].content or "")

    stopped = await run(
        example.build(), example.Product(name=" ", features="x"), gateway=scripted_gateway(model)
    )
    assert stopped.blurb is None  # the gate stopped the chain before any model call
    assert len(model.requests) == 2
