"""Files from disk are data: pickled dataset files never run code, atomic writes stay readable.

CIFAR's python version is pickles in a folder that a foreign run dir's config may name; they are
read by `convattn.data.safe_pickle`, which admits plain containers and numpy arrays only. Real
batches (as Python 2 + numpy 1 wrote the official files, and every protocol Python 3 writes)
read exactly as `pickle.load` reads them; a payload is refused with one paragraph and never
runs, in process and through `convattn-train`. Atomic writes get the mode `open()` would give,
and the temp files of killed writers are cleared, never a target or a live writer's file.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.data_formats import write_cifar
from helpers.runs import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from convattn.data.safe_pickle import ALLOWED, DataUnpickler, read_data_pickle
from convattn.data.torchvision_sets import CIFAR10DataModule, CIFAR100DataModule
from convattn.errors import ConvattnError
from convattn.utils.atomic import current_umask, remove_stale_temps

HOUR = 3600.0
FAST = settings(max_examples=60, deadline=None)
TMP_OK = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# ---------------------------------------------------------------- pickled data: what is admitted
def py2_cifar_batch(rows: np.ndarray, labels: list[int], key: str = "labels") -> bytes:
    """A CIFAR batch byte for byte as the official files are: Python 2's cPickle, protocol 2,
    `str` as BINSTRING, numpy 1's `numpy.core.multiarray._reconstruct`, plus the batch label
    and file names the official batches carry."""

    def text(value: bytes) -> bytes:  # a Python 2 str
        if len(value) < 256:
            return b"U" + bytes([len(value)]) + value
        return b"T" + struct.pack("<I", len(value)) + value

    def integer(n: int) -> bytes:
        if 0 <= n < 256:
            return b"K" + bytes([n])
        return b"J" + struct.pack("<i", n)

    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + integer(0) + b"\x85" + text(b"b") + b"\x87R"  # _reconstruct(ndarray, (0,), 'b')
        + b"(" + integer(1) + integer(rows.shape[0]) + integer(rows.shape[1]) + b"\x86"
        + b"cnumpy\ndtype\n" + text(b"u1") + integer(0) + integer(1) + b"\x87R"
        + b"(" + integer(3) + text(b"|") + b"NNN" + integer(-1) + integer(-1) + integer(0) + b"tb"
        + b"\x89" + text(rows.tobytes()) + b"tb"  # (1, shape, dtype, fortran=False, bytes)
    )  # fmt: skip
    names = b"".join(text(f"img_{i}.png".encode()) for i in range(len(rows)))
    return (
        b"\x80\x02}("
        + text(b"batch_label") + text(b"training batch 1 of 5")
        + text(b"data") + array
        + text(key.encode()) + b"](" + b"".join(integer(y) for y in labels) + b"e"
        + text(b"filenames") + b"](" + names + b"e"
        + b"u."
    )  # fmt: skip


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types; arrays by dtype, shape and bytes (NaNs included)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def restricted_loads(blob: bytes, tmp: Path, encoding: str = "latin1") -> Any:
    path = tmp / "batch"
    path.write_bytes(blob)
    return read_data_pickle(path, "a test batch", encoding=encoding)


def test_the_official_python2_batches_read_exactly_as_pickle_reads_them(tmp_path) -> None:
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, (7, 3072), dtype=np.uint8)
    labels = [3, 0, 9, 1, 1, 4, 2]
    blob = py2_cifar_batch(rows, labels)
    before = pickle.loads(blob, encoding="latin1")  # how the file was read before
    assert same(restricted_loads(blob, tmp_path), before)
    assert before["data"].dtype == np.uint8 and np.array_equal(before["data"], rows)

    folder = write_cifar(tmp_path, fine=False, n_train=10, n_test=5) / "cifar-10-batches-py"
    for b in range(1, 6):
        (folder / f"data_batch_{b}").write_bytes(py2_cifar_batch(rows[:2] + b, [b, 2 * b]))
    images, y = CIFAR10DataModule(root=tmp_path).read_split(train=True)
    assert images.shape == (10, 3, 32, 32) and y.tolist() == [1, 2, 2, 4, 3, 6, 4, 8, 5, 10]
    assert np.array_equal(images[:2].reshape(2, -1).numpy(), rows[:2] + 1)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("numpy_1", [False, True], ids=["numpy._core", "numpy.core"])
def test_every_protocol_and_numpy_spelling_reads_as_before(tmp_path, protocol, numpy_1) -> None:
    rng = np.random.default_rng(protocol)
    entry = {
        "data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
        "fine_labels": [5, 99, 0, 42],
        "coarse_labels": np.array([1, 19, 0, 8]),
        "filenames": [b"a.png", b"b.png", b"c.png", b"d.png"],
        "seen": {1, 2},
    }
    blob = pickle.dumps(entry, protocol=protocol)
    if numpy_1:  # as numpy 1 names its reconstructors (newline-ended or length-prefixed)
        for module in (b"numpy._core.multiarray", b"numpy._core.numeric"):
            old, new = module, module.replace(b"._core", b".core")
            blob = blob.replace(
                b"\x8c" + bytes([len(old)]) + old, b"\x8c" + bytes([len(new)]) + new
            )
            blob = blob.replace(old + b"\n", new + b"\n")
        blob = pickletools.optimize(blob)  # frames its new lengths
        assert b"numpy._core" not in blob and b"numpy.core" in blob
    assert same(restricted_loads(blob, tmp_path), pickle.loads(blob, encoding="latin1"))


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.complex_numbers(
        allow_nan=False), st.text(max_size=6), st.binary(max_size=8),
    st.binary(max_size=8).map(bytearray),
    st.sets(st.integers() | st.text(max_size=3), max_size=3),
    st.frozensets(st.integers(), max_size=3),
    hnp.arrays(
        st.sampled_from([np.uint8, np.int32, np.int64, np.float32, np.float64, np.bool_]),
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    ),
    hnp.from_dtype(np.dtype(np.int64)), hnp.from_dtype(np.dtype(np.float32), allow_nan=False),
)  # fmt: skip
plain_data = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(
            st.text(max_size=4) | st.binary(max_size=4) | st.integers(), inner, max_size=3
        )
    ),
    max_leaves=12,
)


@FAST
@given(data=plain_data, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_plain_containers_and_arrays_read_as_pickle_reads_them(data, protocol) -> None:
    blob = pickle.dumps(data, protocol=protocol)
    with tempfile.TemporaryDirectory() as tmp:
        assert same(restricted_loads(blob, Path(tmp)), pickle.loads(blob, encoding="latin1"))


# ---------------------------------------------------------------- pickled data: what is refused
class Touch:
    """Unpickling this touches `marker` (a `__reduce__` payload)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class System(Touch):
    """Unpickling this runs a shell command that touches `marker`."""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def planted_cifar(root: Path, payload: Any) -> Path:
    """A real CIFAR-10 folder whose data_batch_1 carries `payload` beside real-looking data."""
    write_cifar(root, fine=False, n_train=50, n_test=10)
    batch = root / "cifar-10-batches-py" / "data_batch_1"
    entry = {"data": np.zeros((10, 3072), np.uint8), "labels": list(range(10)), "x": payload}
    batch.write_bytes(pickle.dumps(entry))
    return batch


@pytest.mark.parametrize(("payload", "named"), [(Touch, "Path.touch"), (System, "system")])
def test_a_payload_batch_is_refused_and_never_runs(tmp_path, payload, named) -> None:
    marker = tmp_path / "ran"
    batch = planted_cifar(tmp_path / "data", payload(marker))
    dm = CIFAR10DataModule(root=tmp_path / "data")
    with pytest.raises(ConvattnError) as err:
        dm.read_split(train=True)
    message = str(err.value)
    assert not marker.exists(), "the payload ran"
    assert str(batch) in message and named in message and "\n" not in message
    pickle.loads(batch.read_bytes())  # the payload is live: plain pickle runs it
    assert marker.exists()


def test_cifar100_is_read_the_same_guarded_way(tmp_path) -> None:
    marker = tmp_path / "ran"
    write_cifar(tmp_path, fine=True, n_train=10, n_test=5)
    train = tmp_path / "cifar-100-python" / "train"
    train.write_bytes(pickle.dumps(System(marker), protocol=0))
    with pytest.raises(ConvattnError, match=str(train)):
        CIFAR100DataModule(root=tmp_path).setup()
    assert not marker.exists()


def global_call(module: str, name: str, stack: bool) -> bytes:
    """A pickle that calls module.name('x'): the GLOBAL opcode (protocol 0) or STACK_GLOBAL."""
    if not stack:
        return f"c{module}\n{name}\n(S'x'\ntR.".encode()

    def unicode(s: str) -> bytes:
        data = s.encode()
        return b"X" + struct.pack("<I", len(data)) + data

    return b"\x80\x04" + unicode(module) + unicode(name) + b"\x93" + unicode("x") + b"\x85R."


identifier = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
DANGEROUS = [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
    ("__builtin__", "getattr"), ("builtins", "__import__"), ("subprocess", "Popen"),
    ("pathlib", "Path.touch"), ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"),
    ("numpy", "load"), ("numpy", "frombuffer"), ("numpy.core.multiarray", "fromfile"),
    ("numpy._core.multiarray", "_reconstruct.__globals__"), ("_codecs", "decode"),
    ("torch", "load"), ("builtins", "open"), ("functools", "partial"),
]  # fmt: skip
refused_globals = st.sampled_from(DANGEROUS) | st.tuples(
    st.sampled_from(["os", "builtins", "numpy", "numpy._core.multiarray", "_codecs"]) | identifier,
    identifier | st.sampled_from(["_reconstruct", "ndarray", "dtype", "encode", "set"]),
)


@FAST
@given(target=refused_globals.filter(lambda t: t not in ALLOWED), stack=st.booleans())
def test_any_other_global_is_refused_by_name(target, stack) -> None:
    module, name = target
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data_batch_1"
        path.write_bytes(global_call(module, name, stack))
        with pytest.raises(ConvattnError) as err:
            read_data_pickle(path, "a CIFAR-10 batch")
    message = str(err.value)
    assert f"{module}.{name}" in message and str(path) in message and "\n" not in message


def test_only_latin1_bytes_come_through_codecs(tmp_path) -> None:
    """Old protocols write bytes as `_codecs.encode(text, 'latin1')`; no other codec runs."""
    good = pickle.dumps(b"\x00\xffcifar", protocol=2)
    assert b"_codecs" in good and restricted_loads(good, tmp_path) == b"\x00\xffcifar"
    bomb = b"c_codecs\nencode\n(S'x'\nS'zlib_codec'\ntR."
    with pytest.raises(pickle.UnpicklingError, match="zlib_codec"):
        restricted_loads(bomb, tmp_path)
    batch = write_cifar(tmp_path, fine=False, n_train=5, n_test=5) / "cifar-10-batches-py"
    (batch / "test_batch").write_bytes(bomb)
    with pytest.raises(ConvattnError, match="test_batch"):
        CIFAR10DataModule(root=tmp_path).read_split(train=False)


def test_the_unpickler_resolves_only_the_allow_list() -> None:
    class Probe(DataUnpickler):
        def __init__(self) -> None:
            pass  # find_class needs no file

    for (module, name), obj in ALLOWED.items():
        assert Probe().find_class(module, name) is obj
    with pytest.raises(pickle.UnpicklingError):
        Probe().find_class("os", "system")


@pytest.mark.parametrize(
    "entry",
    [
        {"data": np.zeros((4, 3072), np.float32), "labels": [0, 1, 2, 3]},  # not integers
        {"data": np.full((4, 3072), 300), "labels": [0, 1, 2, 3]},  # not bytes
        {"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 2]},  # do not pair
        {"data": np.zeros((4, 3072), np.uint8), "labels": ["a", "b", "c", "d"]},
        {"data": np.zeros((4, 1024), np.uint8), "labels": [0, 1, 2, 3]},  # grey 32x32
        {"data": np.array([object()] * 3072 * 4).reshape(4, 3072), "labels": [0, 1, 2, 3]},
        [np.zeros((4, 3072), np.uint8), [0, 1, 2, 3]],  # not a dict
    ],
    ids=["float", "300", "unpaired", "str-labels", "grey", "objects", "list"],
)
def test_a_batch_of_the_wrong_content_is_one_paragraph(tmp_path, entry) -> None:
    write_cifar(tmp_path, fine=False, n_train=5, n_test=5)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(pickle.dumps(entry))
    with pytest.raises(ConvattnError) as err:
        CIFAR10DataModule(root=tmp_path).read_split(train=False)
    assert str(batch) in str(err.value) and "\n" not in str(err.value)


def test_a_truncated_batch_is_one_paragraph(tmp_path) -> None:
    write_cifar(tmp_path, fine=False, n_train=5, n_test=5)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    for cut in (0, 1, 40, len(batch.read_bytes()) // 2):
        whole = pickle.dumps({"data": np.zeros((5, 3072), np.uint8), "labels": [0] * 5})
        batch.write_bytes(whole[:cut])
        with pytest.raises(ConvattnError, match="test_batch"):
            CIFAR10DataModule(root=tmp_path).read_split(train=False)


def test_the_entry_point_refuses_a_payload_batch_with_exit_2(tmp_path) -> None:
    marker = tmp_path / "ran"
    batch = planted_cifar(tmp_path / "data", System(marker))
    proc = run_cli(
        "convattn-train",
        "data=cifar10",
        f"data.root={tmp_path / 'data'}",
        "data.img_size=32",
        "model.size=tiny",
        "trainer.max_epochs=1",
        "logger=csv",
        "print_config=false",
        "profile=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        check=False,
        timeout=300,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert not marker.exists(), "the payload ran"
    paragraphs = [p for p in proc.stderr.split("\n\n") if str(batch) in p]
    assert len(paragraphs) == 1 and "posix.system" in paragraphs[0], proc.stderr[-3000:]


# ---------------------------------------------------------------- atomic writes: modes, leftovers
MODE_SCRIPT = """
import os, stat, sys
from pathlib import Path
from convattn.utils.atomic import atomic_write, current_umask
mask = int(sys.argv[1], 8)
os.umask(mask)
folder = Path(sys.argv[2])
atomic_write(folder / "atomic.bin", lambda f: f.write(b"x"))
atomic_write(folder / "atomic.bin", lambda f: f.write(b"y"))  # over an existing file too
open(folder / "plain.bin", "wb").close()
assert current_umask() == mask and os.umask(mask) == mask  # read without changing it
for name in ("atomic.bin", "plain.bin"):
    print(oct(stat.S_IMODE((folder / name).stat().st_mode)))
"""


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077], ids=oct)
def test_atomic_files_get_the_mode_open_gives(tmp_path, mask) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", MODE_SCRIPT, oct(mask), str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    atomic, plain = proc.stdout.split()
    assert atomic == plain == oct(0o666 & ~mask)


def test_current_umask_leaves_the_umask_as_it_was() -> None:
    mask = current_umask()
    assert os.umask(mask) == mask


WRITER_SCRIPT = """
import os, signal, sys
from pathlib import Path
from convattn.utils.atomic import atomic_write

def write(f):
    f.write(b"x" * 100_000)
    f.flush()
    print("writing", flush=True)
    if sys.stdin.readline().strip() == "die":  # killed mid-write: the temp file stays
        os.kill(os.getpid(), signal.SIGKILL)
    f.write(b"y")

atomic_write(Path(sys.argv[1]), write)
"""


def writer(target: Path) -> subprocess.Popen:
    """A process inside `atomic_write(target)`, waiting on stdin: 'go' finishes, 'die' kills."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(target)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "writing"
    return proc


def temps(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def age(path: Path, seconds: float = 2 * HOUR) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past), follow_symlinks=False)


def test_stale_temps_of_killed_writers_go_live_ones_and_targets_stay(tmp_path) -> None:
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"previous")
    lookalikes = ["entry.pt", ".entry.pt", "entry.pt.tmp", ".hidden.tmp", ".e.pt.ABCDEFGH.tmp"]
    for name in lookalikes:
        (tmp_path / name).write_bytes(b"keep")
    (tmp_path / ".dir.abcdefgh.tmp").mkdir()  # a folder named like a temp file
    (tmp_path / ".link.abcdefgh.tmp").symlink_to(tmp_path / "entry.pt")
    os.mkfifo(tmp_path / ".fifo.abcdefgh.tmp")
    for path in tmp_path.iterdir():
        age(path)

    live = writer(target)  # holds its temp file's lock
    (live_temp,) = [t for t in temps(tmp_path) if t.name.startswith(".last.ckpt.")]
    age(live_temp)
    dead = writer(tmp_path / "entry.pt")
    dead.communicate("die\n", timeout=60)
    assert dead.returncode == -signal.SIGKILL
    (dead_temp,) = [t for t in temps(tmp_path) if t.name.startswith(".entry.pt.")]

    assert remove_stale_temps(tmp_path, HOUR) == []  # the dead writer's temp is still fresh
    age(dead_temp)
    assert remove_stale_temps(tmp_path, HOUR) == [dead_temp]  # the live one is locked
    assert live_temp.exists()
    live.communicate("go\n", timeout=60)
    assert live.returncode == 0 and target.read_bytes() == b"x" * 100_000 + b"y"

    assert remove_stale_temps(tmp_path, 0) == []
    for name in lookalikes:
        assert (tmp_path / name).read_bytes() == b"keep"
    assert (tmp_path / ".dir.abcdefgh.tmp").is_dir()
    assert (tmp_path / ".link.abcdefgh.tmp").is_symlink()
    assert (tmp_path / ".fifo.abcdefgh.tmp").is_fifo()
    assert remove_stale_temps(tmp_path / "missing", 0) == []  # housekeeping: no error


file_names = st.text(
    st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=30,
).filter(lambda n: n not in (".", "..") and not (n.startswith(".") and n.endswith(".tmp")))


@TMP_OK
@given(names=st.lists(file_names, min_size=1, max_size=5, unique=True))
def test_cleanup_takes_exactly_atomic_writes_temps(names) -> None:
    """For any target names: their leftover temps (made by atomic_write's own mkstemp call)
    go, the targets stay; a name that merely ends in .tmp is not a temp."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        leftovers = []
        for name in names:
            (folder / name).write_bytes(b"target")
            fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            os.close(fd)
            leftovers.append(Path(temp))
        for path in folder.iterdir():
            age(path)
        assert sorted(remove_stale_temps(folder, HOUR)) == sorted(leftovers)
        assert sorted(p.name for p in folder.iterdir()) == sorted(names)
