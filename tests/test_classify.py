"""The LLM classifier tier: confidence from log-probabilities, else from self-consistency."""

from __future__ import annotations

import httpx2
import pytest

from llmflow import ModelResponse, classify, run
from llmflow.models.gateway import Gateway, ProviderLimits
from llmflow.settings import Settings
from llmflow.testing import ScriptedModel, scripted_gateway

from .test_openai_compat import Server, completion

LABELS = ["billing", "support", "spam"]


async def test_choice_probabilities_give_the_label_and_its_confidence() -> None:
    model = ScriptedModel(
        [ModelResponse(text="support", choice_probs={"billing": 0.2, "support": 0.7, "spam": 0.1})]
    )
    step = classify("llm", LABELS, instructions="Classify the email.")
    said = await run(step, "My tent pole broke", gateway=scripted_gateway(model))
    assert (said.label, said.confidence) == ("support", 0.7)
    request = model.requests[0]
    assert request.choices == LABELS
    assert "billing, support, spam" in (request.messages[0].content or "")
    assert request.messages[1].content == "My tent pole broke"


async def test_without_log_probabilities_it_votes_and_reports_the_agreement() -> None:
    answers = iter(["Billing.", "billing", "spam", "billing", "no idea"])
    model = ScriptedModel(lambda request: next(answers))
    step = classify("llm", LABELS, votes=5)
    said = await run(step, "Invoice 7 is overdue", gateway=scripted_gateway(model))
    assert (said.label, said.confidence) == ("billing", 0.6)
    temperatures = [r.sampling.temperature for r in model.requests]
    assert temperatures[0] == 0.0 and all(t > 0 for t in temperatures[1:])
    assert len({r.sampling.seed for r in model.requests[1:]}) == 4  # distinct samples


async def test_answers_outside_the_label_set_abstain() -> None:
    model = ScriptedModel(["I think it is a complaint"])
    step = classify("llm", LABELS, votes=1)
    said = await run(step, "?", gateway=scripted_gateway(model))
    assert (said.label, said.confidence) == (None, 0.0)


def test_a_classifier_needs_two_labels() -> None:
    with pytest.raises(ValueError, match="at least two labels"):
        classify("llm", ["only"])


async def test_an_openai_compatible_server_gives_the_answers_probability() -> None:
    reply = completion("spam")
    reply["choices"][0]["logprobs"] = {
        "content": [{"token": "sp", "logprob": -0.1, "bytes": None, "top_logprobs": []},
                    {"token": "am", "logprob": -0.05, "bytes": None, "top_logprobs": []}]
    }  # fmt: skip
    server = Server(httpx2.Response(200, json=reply))
    gateway = Gateway(Settings(model="test-model"), limits={"t": ProviderLimits()})
    gateway.register("test-model", server.client())
    said = await run(classify("llm", LABELS), "WIN A PRIZE", gateway=gateway)
    assert said.label == "spam"
    assert said.confidence == pytest.approx(0.8607, abs=1e-3)  # exp(-0.15)
    assert server.requests[0]["logprobs"] is True
    assert "response_format" not in server.requests[0]


@pytest.mark.embedded
async def test_the_embedded_model_scores_every_label_exactly() -> None:
    from llmflow.models.embedded import EmbeddedClient

    step = classify("llm", ["billing", "spam"], instructions="Is this email billing or spam?")
    request = step.request("Subject: Invoice 4411\n\nInvoice 4411 is overdue.")
    client = EmbeddedClient()
    first = await client.complete("local", request)
    again = await client.complete("local", request)  # the KV state of the first is reused
    assert first.choice_probs is not None and set(first.choice_probs) == {"billing", "spam"}
    assert sum(first.choice_probs.values()) == pytest.approx(1.0)
    assert first.text == max(first.choice_probs, key=first.choice_probs.__getitem__)
    assert again.choice_probs == pytest.approx(first.choice_probs, abs=1e-3)
    said = await run(step, "Invoice 4411 is overdue.", gateway=Gateway(Settings(model="local")))
    assert said.label in {"billing", "spam"} and 0.5 <= said.confidence <= 1.0
