"""Reading a GGUF file's key-value metadata (the chat template, the context length) without
loading the model: llama.cpp is slow to load and crashes on some files, so a user's model is
checked here first."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

_SCALARS = {
    0: "<B",  # uint8
    1: "<b",  # int8
    2: "<H",  # uint16
    3: "<h",  # int16
    4: "<I",  # uint32
    5: "<i",  # int32
    6: "<f",  # float32
    7: "<?",  # bool
    10: "<Q",  # uint64
    11: "<q",  # int64
    12: "<d",  # float64
}
_STRING, _ARRAY = 8, 9


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The key-value metadata of a GGUF file (v2 or v3), without loading the model. Arrays
    (the vocabulary, merges) are skipped: their keys map to their lengths. Raises ValueError
    for a file that is not a GGUF."""
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError("no GGUF header")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _read_metadata(data)


def _read_metadata(data: mmap.mmap) -> dict[str, Any]:
    version, _tensors, count = struct.unpack_from("<IQQ", data, 4)
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} is not supported")
    pos = 24
    meta: dict[str, Any] = {}

    def string() -> str:
        nonlocal pos
        (length,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        text = bytes(data[pos : pos + length]).decode("utf-8", errors="replace")
        pos += length
        return text

    def value(kind: int) -> Any:
        nonlocal pos
        if kind == _STRING:
            return string()
        if kind == _ARRAY:
            item, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            if item == _STRING:
                for _ in range(n):
                    (length,) = struct.unpack_from("<Q", data, pos)
                    pos += 8 + length
            elif item in _SCALARS:
                pos += n * struct.calcsize(_SCALARS[item])
            else:
                for _ in range(n):
                    value(item)
            return n
        fmt = _SCALARS.get(kind)
        if fmt is None:
            raise ValueError(f"unknown GGUF value type {kind}")
        (found,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return found

    try:
        for _ in range(count):
            key = string()
            (kind,) = struct.unpack_from("<I", data, pos)
            pos += 4
            meta[key] = value(kind)
    except struct.error as e:
        raise ValueError(f"truncated GGUF metadata ({e})") from None
    return meta
