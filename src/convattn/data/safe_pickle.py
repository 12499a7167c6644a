"""Pickled data files read as data: only plain containers and numpy arrays come out.

CIFAR's python version is pickles, and the folder they are read from may be named by a foreign
file (the saved config of a run dir from elsewhere, which convattn-explain and convattn-report
follow). `pickle.load` would call whatever a file names (`os.system`, a `__reduce__` payload);
`DataUnpickler` resolves only the few constructors that numpy arrays and scalars, sets and the
bytes of old protocols are made of, and refuses every other global before importing it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from convattn.errors import ConvattnError


def latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as pickle protocols 0-2 use it (bytes written as latin-1 text), and
    nothing else: another codec (zlib, base64...) is refused rather than run."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


# numpy's own reconstructors, taken from what numpy's pickling returns (their module is
# numpy.core in numpy 1, numpy._core in numpy 2; a file may come from either).
_reconstruct = np.zeros(1).__reduce__()[0]
_frombuffer = np.zeros(1).__reduce_ex__(5)[0]
_scalar = np.int64(0).__reduce__()[0]

ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{
        (f"numpy.{core}.{module}", name): function
        for core in ("core", "_core")
        for module, name, function in (
            ("multiarray", "_reconstruct", _reconstruct),
            ("multiarray", "scalar", _scalar),
            ("numeric", "_frombuffer", _frombuffer),
        )
    },
    # protocols 0-3 name these for sets, frozensets, bytearrays, complex numbers and bytes
    **{
        (module, kind.__name__): kind
        for module in ("builtins", "__builtin__")
        for kind in (set, frozenset, bytearray, bytes, complex)
    },
    ("_codecs", "encode"): latin1_bytes,
}


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a global outside `ALLOWED`: loading it could run code."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class DataUnpickler(pickle.Unpickler):
    """An Unpickler whose globals are `ALLOWED`'s objects; any other raises RefusedGlobal."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(module, name) from None


def read_data_pickle(path: Path, what: str, encoding: str = "latin1") -> Any:
    """The plain data pickled in `path`, read with `DataUnpickler` (latin-1 for Python 2's str,
    as CIFAR's files need).

    A global outside the allow-list raises a ConvattnError naming the file and the global; the
    payload never runs. Every other failure (OSError, a broken or truncated pickle, bad
    arguments to numpy) propagates as itself, for the caller to word with its format.
    """
    with open(path, "rb") as f:
        try:
            return DataUnpickler(f, encoding=encoding).load()
        except RefusedGlobal as err:
            raise ConvattnError(
                f"Refusing to read {path} as {what}: the pickle names {err.module}.{err.name}, "
                "and loading it would call that code. convattn reads pickled data files only "
                "as plain containers (dict, list, tuple, set, str, bytes, numbers) and numpy "
                "arrays, which is all a dataset's pickle holds; replace the file with the "
                "dataset's own (or data.download=true into an empty data.root)."
            ) from None
