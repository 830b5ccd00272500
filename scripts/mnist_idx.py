"""Read and write MNIST's IDX files (``*-idx3-ubyte.gz`` / ``*-idx1-ubyte.gz``).

This module sits beside the training script because the script folder is what
Azure ML uploads to a cluster; the ``helpers`` package imports it from here, so
the reader exists once.  It needs only the standard library and NumPy.

IDX format (http://yann.lecun.com/exdb/mnist/): a big-endian header of a magic
number ``0x0000 08 NN`` (unsigned bytes, ``NN`` dimensions), then ``NN`` 32-bit
sizes, then the data.  Images have three dimensions (count, rows, columns),
labels one (count).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

#: A small JSON file written beside the four files that says where they came from.
SOURCE_FILE = "source.json"
FULL_MNIST = "MNIST"

_UBYTE = 0x08


class IdxError(ValueError):
    """An IDX file is not what it should be; the message names the file."""


class MissingDataError(FileNotFoundError):
    """One of the four MNIST files is not in the data folder."""


def read_idx(path: str | os.PathLike, expected_ndim: int | None = None) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes and check its header against its size."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (gzip.BadGzipFile, OSError, EOFError, zlib.error) as exc:
        raise IdxError(f"{path}: not a complete gzip file ({exc}). Delete it and fetch it again.") from exc
    if len(raw) < 4:
        raise IdxError(f"{path}: too short to hold an IDX header ({len(raw)} bytes).")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _UBYTE or ndim == 0:
        raise IdxError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} "
            f"(expected 0x000008NN for unsigned bytes with NN dimensions)."
        )
    if expected_ndim is not None and ndim != expected_ndim:
        kind = "images (3 dimensions)" if expected_ndim == 3 else "labels (1 dimension)"
        raise IdxError(f"{path}: has {ndim} dimensions, expected {kind}.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{path}: header truncated.")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(raw) - header
    if actual != expected:
        raise IdxError(
            f"{path}: header says {'x'.join(map(str, shape))} = {expected} bytes of data, "
            f"file holds {actual} (truncated or corrupt). Delete it and fetch it again."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array of unsigned bytes as a gzipped IDX file, atomically."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise IdxError(f"{path}: IDX writer takes uint8 arrays, got {array.dtype}.")
    header = struct.pack(">HBB", 0, _UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # mtime=0 makes the bytes (and so the SHA-256) reproducible.
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(header)
            f.write(array.tobytes())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def find_mnist_folder(data_folder: str | os.PathLike) -> Path:
    """Return the folder below ``data_folder`` that holds the four MNIST files.

    A mounted Azure ML dataset can nest the files a few levels down, so this
    searches the whole tree and names what it looked for when they are missing.
    """
    root = Path(data_folder)
    if not root.is_dir():
        raise MissingDataError(
            f"Data folder {root} does not exist. Pass --data-folder with the folder that holds {', '.join(FILE_NAMES)}."
        )
    found: dict[str, Path] = {}
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=True):
        for name in FILE_NAMES:
            if name in filenames and name not in found:
                found[name] = Path(dirpath)
    missing = [n for n in FILE_NAMES if n not in found]
    if missing:
        raise MissingDataError(
            f"Missing {', '.join(missing)} under {root} (searched all subfolders). "
            f"The data folder needs all of {', '.join(FILE_NAMES)}."
        )
    folders = set(found.values())
    if len(folders) != 1:
        raise MissingDataError(
            f"The MNIST files under {root} are split across folders "
            f"{sorted(map(str, folders))}; keep the four files together."
        )
    return folders.pop()


@dataclass(frozen=True)
class MnistArrays:
    """The four MNIST arrays and a description of where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    folder: Path


def read_source(folder: str | os.PathLike, n_train: int = 60000, n_test: int = 10000) -> str:
    """Describe the data in ``folder``: the name in ``source.json``, else judged by its size."""
    marker = Path(folder) / SOURCE_FILE
    if marker.is_file():
        try:
            return json.loads(marker.read_text())["name"]
        except (ValueError, KeyError):
            pass
    if (n_train, n_test) == (60000, 10000):
        return FULL_MNIST
    return f"MNIST-format subset ({n_train} training / {n_test} test images)"


def load_mnist(data_folder: str | os.PathLike) -> MnistArrays:
    """Load and check the four files found anywhere below ``data_folder``."""
    folder = find_mnist_folder(data_folder)
    x_train = read_idx(folder / TRAIN_IMAGES, 3)
    y_train = read_idx(folder / TRAIN_LABELS, 1)
    x_test = read_idx(folder / TEST_IMAGES, 3)
    y_test = read_idx(folder / TEST_LABELS, 1)
    for images, labels, img_name, lab_name in (
        (x_train, y_train, TRAIN_IMAGES, TRAIN_LABELS),
        (x_test, y_test, TEST_IMAGES, TEST_LABELS),
    ):
        if len(images) != len(labels):
            raise IdxError(
                f"{folder}: {img_name} holds {len(images)} images but {lab_name} holds {len(labels)} labels."
            )
        if images.shape[1:] != (28, 28):
            raise IdxError(f"{folder / img_name}: images are {images.shape[1:]}, expected 28x28.")
        if labels.size and labels.max() > 9:
            raise IdxError(f"{folder / lab_name}: label {labels.max()} is not a digit 0-9.")
    return MnistArrays(x_train, y_train, x_test, y_test, read_source(folder, len(x_train), len(x_test)), folder)
