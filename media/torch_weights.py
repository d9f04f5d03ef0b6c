"""Read a PyTorch checkpoint's tensors into numpy arrays without importing torch.

Torch must not be a run-time dependency, yet the speaker encoder's weights
ship as a ``.pt`` file. Two layouts exist:

* legacy (torch < 1.6): several pickles back to back — a magic number, a
  protocol version, system info, the object itself (tensors refer to their
  storages by *persistent id*), the list of storage keys, then each
  storage's raw bytes prefixed by its element count;
* zip (torch >= 1.6): ``<name>/data.pkl`` plus one ``<name>/data/<key>``
  member of raw bytes per storage.

Both are read by an unpickler that only knows the handful of globals a
plain state dict needs (``OrderedDict`` and torch's tensor/storage
rebuilders, mapped to numpy). Anything else — a class, a function, any
code a malicious checkpoint could smuggle in — raises
``CheckpointFormatError`` instead of being imported.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["CheckpointFormatError", "load_checkpoint"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch storage class name -> numpy dtype (little endian, as torch writes it).
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class CheckpointFormatError(ValueError):
    """The file is not a checkpoint we can read safely."""


@dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: np.dtype


@dataclass(slots=True)
class _Storage:
    """A storage whose bytes arrive after the pickle (legacy) or from a zip member."""

    key: str
    dtype: np.dtype
    data: np.ndarray | None = None


@dataclass(slots=True)
class _LazyTensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def materialise(self) -> np.ndarray:
        if self.storage.data is None:
            raise CheckpointFormatError(f"storage {self.storage.key} has no data")
        flat = self.storage.data
        itemsize = flat.dtype.itemsize
        if not self.shape:
            return flat[self.offset].copy()
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride)) + 1
        if min(self.shape) > 0 and needed > flat.size:
            raise CheckpointFormatError(f"tensor overruns storage {self.storage.key}")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.shape,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, offset, shape, stride, requires_grad=False, hooks=None, *rest):
    if not isinstance(storage, _Storage):
        raise CheckpointFormatError("tensor does not refer to a storage")
    return _LazyTensor(storage, int(offset), tuple(shape), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, hooks=None, *rest):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise CheckpointFormatError(f"checkpoint refers to {module}.{name}, which is not allowed")

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or len(pid) < 4 or pid[0] != "storage":
            raise CheckpointFormatError(f"unexpected persistent id {pid!r:.80}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise CheckpointFormatError("storage of an unknown type")
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointFormatError("storage views are not supported")
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = _Storage(key, storage_type.dtype)
        return storage


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialise()
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialise(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v) for v in obj)
    return obj


def _load_legacy(f: BinaryIO) -> Any:
    header = _PlainUnpickler(f)  # ints and a dict of ints: no globals at all
    if header.load() != _LEGACY_MAGIC:
        raise CheckpointFormatError("not a torch checkpoint (bad magic number)")
    if header.load() != _LEGACY_PROTOCOL:
        raise CheckpointFormatError("unsupported torch checkpoint protocol")
    sys_info = header.load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise CheckpointFormatError("only little-endian checkpoints are supported")
    storages: dict[str, _Storage] = {}
    obj = _RestrictedUnpickler(f, storages).load()
    keys = _PlainUnpickler(f).load()
    if not isinstance(keys, list):
        raise CheckpointFormatError("storage key list missing")
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise CheckpointFormatError(f"data for unknown storage {key}")
        raw = f.read(8)
        if len(raw) != 8:
            raise CheckpointFormatError("checkpoint truncated")
        (numel,) = struct.unpack("<q", raw)
        nbytes = numel * storage.dtype.itemsize
        data = f.read(nbytes)
        if numel < 0 or len(data) != nbytes:
            raise CheckpointFormatError("checkpoint truncated")
        storage.data = np.frombuffer(data, dtype=storage.dtype)
    return obj


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise CheckpointFormatError("zip checkpoint without a single data.pkl")
        prefix = pkl[0][: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(io.BytesIO(archive.read(pkl[0])), storages).load()
        for key, storage in storages.items():
            member = f"{prefix}data/{key}"
            if member not in names:
                raise CheckpointFormatError(f"data for storage {key} missing")
            storage.data = np.frombuffer(archive.read(member), dtype=storage.dtype)
    return obj


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise CheckpointFormatError(f"checkpoint header refers to {module}.{name}")


def load_checkpoint(path: str | Path) -> Any:
    """Load a torch checkpoint: the same nesting of dicts/lists, tensors as numpy arrays."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            obj = _load_zip(path)
        else:
            with path.open("rb") as f:
                obj = _load_legacy(f)
    except CheckpointFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointFormatError(f"cannot read checkpoint {path.name}: {exc}") from exc
    return _materialise(obj)
