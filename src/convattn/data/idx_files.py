"""MNIST's file format (IDX): the four file names and a reader that checks what it reads."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file (MNIST's format), plain or gzip'd, as a numpy array.

    Header: two zero bytes, type 0x08 (ubyte), the number of dimensions, then one big-endian
    uint32 per dimension; the bytes follow. Raises ValueError on anything else (a truncated
    or padded body, another element type), OSError/EOFError/zlib.error on a broken gzip.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ValueError(f"not an unsigned-byte IDX file (header {data[:4]!r})")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"the header of {ndim} dimensions is cut off after {len(data)} bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(shape):  # Python ints: no overflow on a crafted header
        raise ValueError(f"{body.size} bytes of data for shape {shape}: truncated or padded")
    return body.reshape(shape)
