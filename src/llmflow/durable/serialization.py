"""How durable state is stored: tagged JSON, never pickle, optionally encrypted.

DBOS stores workflow inputs, step outputs, results, events and messages through this
serializer. Plain JSON values are stored as they are; other values carry a small tag:

- pydantic models and dataclasses: `{"$t": "obj", "cls": "module:Qualname", "v": ...}`.
  Reading one back only resolves classes from modules this process has already imported
  (the workflow's own code), and only pydantic models or dataclasses - stored data can
  never name an arbitrary callable to run, as pickle lets it.
- paths, decimals, tuples, bytes, and dicts whose keys are not all strings;
- exceptions: their type name and message (`RecordedError` when read back).

With `LLMFLOW_ENCRYPTION_KEY` set (a Fernet key: `llmflow.durable.new_encryption_key()`),
every stored value is encrypted; reading an encrypted value without the key is a clear error.
Every stored value is first stripped of credentials (`llmflow.redact`): API keys, bearer
tokens and URL passwords never reach the durable database, in errors, inputs or outputs.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from decimal import Decimal
from pathlib import Path, PurePath
from typing import Any

import pydantic
from cryptography.fernet import Fernet, InvalidToken

from ..errors import ConfigError, RunError
from ..redact import redact

SERIALIZER_NAME = "llmflow_json"
_ENCRYPTED = "fernet:"


class RecordedError(RunError):
    """An error recorded by a durable step in an earlier execution, raised again on replay."""

    def __init__(self, type_name: str, message: str, *, typed: bool = True) -> None:
        # `typed=False` for messages that name their cause already (an item's error, as
        # `str(error)` gave it when it was recorded): the same text as in the live run.
        super().__init__(f"{type_name}: {message}" if message and typed else message or type_name)
        self.type_name = type_name
        """The original exception's class name."""
        self.scope: str | None = None
        """`run` when the original error stopped its whole run (a budget, a provider down)."""


def new_encryption_key() -> str:
    """A fresh key for LLMFLOW_ENCRYPTION_KEY."""
    return Fernet.generate_key().decode()


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(path: str) -> type:
    """A class named by `module:Qualname`, from an already imported module only."""
    module_name, _, qualname = path.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        raise ConfigError(
            f"stored durable state names {path}, whose module is not loaded: load the "
            "workflow that wrote it before resuming"
        )
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if not isinstance(target, type) or not (
        issubclass(target, pydantic.BaseModel) or dataclasses.is_dataclass(target)
    ):
        raise ConfigError(f"stored durable state names {path}, not a pydantic model or dataclass")
    return target


_adapters: dict[type, pydantic.TypeAdapter[Any]] = {}


def _adapter(cls: type) -> pydantic.TypeAdapter[Any]:
    """The TypeAdapter of a dataclass, built once per class (building one costs ~1 ms: it
    was most of the CPU time of a checkpointed model call)."""
    adapter = _adapters.get(cls)
    if adapter is None:
        adapter = _adapters[cls] = pydantic.TypeAdapter(cls)
    return adapter


def encode(value: Any) -> Any:
    """A JSON-ready form of `value` (see the module's docstring)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and "$t" not in value:
            return {k: encode(v) for k, v in value.items()}
        return {"$t": "map", "v": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$t": "tuple", "v": [encode(v) for v in value]}
    if isinstance(value, pydantic.BaseModel):
        return {"$t": "obj", "cls": _class_path(type(value)), "v": value.model_dump(mode="json")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = _adapter(type(value)).dump_python(value, mode="json")
        return {"$t": "obj", "cls": _class_path(type(value)), "v": data}
    if isinstance(value, PurePath):
        return {"$t": "path", "v": str(value)}
    if isinstance(value, Decimal):
        return {"$t": "decimal", "v": str(value)}
    if isinstance(value, bytes):
        return {"$t": "bytes", "v": base64.b64encode(value).decode()}
    if isinstance(value, BaseException):
        type_name = value.type_name if isinstance(value, RecordedError) else type(value).__name__
        return {"$t": "error", "type": type_name, "v": str(value)}
    raise TypeError(
        f"cannot store a {type(value).__name__} in durable state: return JSON values, "
        "pydantic models or dataclasses from steps"
    )


def decode(data: Any) -> Any:
    """The value `encode` made `data` from."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    tag = data.get("$t")
    if tag is None:
        return {k: decode(v) for k, v in data.items()}
    v = data["v"]
    if tag == "obj":
        cls = _resolve(data["cls"])
        if issubclass(cls, pydantic.BaseModel):
            return cls.model_validate(v)
        return _adapter(cls).validate_python(v)
    if tag == "map":
        return {decode(k): decode(val) for k, val in v}
    if tag == "tuple":
        return tuple(decode(x) for x in v)
    if tag == "path":
        return Path(v)
    if tag == "decimal":
        return Decimal(v)
    if tag == "bytes":
        return base64.b64decode(v)
    if tag == "error":
        return RecordedError(data["type"], v)
    raise ConfigError(f"unknown tag {tag!r} in stored durable state")


def _json(data: Any) -> str:
    """`encode(data)` as JSON text. A pydantic model or dataclass (a model call's checkpoint,
    the most frequent) is dumped by pydantic in one pass, ~4x faster than building its
    encoded form and dumping that: the same text but for spacing and escapes."""
    if isinstance(data, pydantic.BaseModel):
        body = data.model_dump_json()
    elif dataclasses.is_dataclass(data) and not isinstance(data, type):
        body = _adapter(type(data)).dump_json(data).decode()
    else:
        return json.dumps(encode(data), ensure_ascii=False, separators=(",", ":"))
    return f'{{"$t":"obj","cls":{json.dumps(_class_path(type(data)))},"v":{body}}}'


class JsonSerializer:
    """llmflow's serializer (call checkpoints, and DBOS's through `engine.launch`, which
    registers it as a DBOS `Serializer`): tagged JSON, Fernet-encrypted when a key is given."""

    def __init__(self, encryption_key: str | None = None) -> None:
        try:
            self._fernet = Fernet(encryption_key.encode()) if encryption_key else None
        except ValueError as e:
            raise ConfigError(
                "LLMFLOW_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded "
                "bytes): make one with `python -c 'from llmflow.durable import "
                "new_encryption_key; print(new_encryption_key())'`"
            ) from e

    def name(self) -> str:
        return SERIALIZER_NAME

    def serialize(self, data: Any) -> str:
        text = redact(_json(data))
        if self._fernet is None:
            return text
        return _ENCRYPTED + self._fernet.encrypt(text.encode()).decode()

    def deserialize(self, serialized_data: str) -> Any:
        text = serialized_data
        if text.startswith(_ENCRYPTED):
            if self._fernet is None:
                raise ConfigError(
                    "durable state is encrypted: set LLMFLOW_ENCRYPTION_KEY to the key it was "
                    "written with"
                )
            try:
                text = self._fernet.decrypt(text[len(_ENCRYPTED) :].encode()).decode()
            except InvalidToken as e:
                raise ConfigError(
                    "durable state was encrypted with another key than LLMFLOW_ENCRYPTION_KEY"
                ) from e
        return decode(json.loads(text))
