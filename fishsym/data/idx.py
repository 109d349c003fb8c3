"""The full MNIST from its standard IDX files (LeCun, Cortes & Burges).

The bundled ``mnist_10k.npz`` (:func:`fishsym.data.load_mnist_10k`) is what fishsym uses
by default, offline. This module reads the complete data set — 60,000 training and
10,000 test digits — from the four standard IDX files, either from a directory the user
names or, when a network is available, downloaded from a public mirror. Every file is
checked against its published SHA-256 before it is used.

IDX format: a big-endian header ``0x00 0x00 <type code> <number of dimensions>``, one
big-endian ``uint32`` per dimension, then the values in C order. The files may be
gzip-compressed (``*.gz``, as distributed) or raw.

>>> from fishsym.data.idx import load_mnist_idx
>>> x_train, y_train, x_test, y_test = load_mnist_idx("~/data/mnist")   # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the environment variable naming a directory with the MNIST IDX files
MNIST_DIR_ENV = "FISHSYM_MNIST_DIR"

#: public mirrors of the original files, tried in order (yann.lecun.com itself no longer
#: serves them reliably)
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: seconds to wait for a mirror before giving up on it
DOWNLOAD_TIMEOUT = 30

# IDX type code -> numpy dtype (big-endian where it matters)
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class IdxFile:
    """One of the four standard MNIST files and its published checksums.

    ``stem`` is the file name without ``.gz``; ``gz_sha256``/``gz_bytes`` describe the
    compressed file as distributed, ``raw_sha256``/``raw_bytes`` the decompressed one.
    """

    stem: str
    shape: tuple[int, ...]
    gz_sha256: str
    gz_bytes: int
    raw_sha256: str
    raw_bytes: int

    @property
    def gz_name(self) -> str:
        return self.stem + ".gz"

    def candidate_names(self) -> list[str]:
        """File names accepted in a user directory: the standard ones, compressed or
        raw, and the ``train-images.idx3-ubyte`` spelling some copies use."""
        dotted = self.stem.replace("-idx", ".idx")
        return [self.gz_name, self.stem, dotted + ".gz", dotted]


#: the four standard files (names, shapes, sizes and SHA-256 as published by the mirrors)
MNIST_FILES: dict[str, IdxFile] = {
    "train_images": IdxFile(
        "train-images-idx3-ubyte",
        (60000, 28, 28),
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        9912422,
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47040016,
    ),
    "train_labels": IdxFile(
        "train-labels-idx1-ubyte",
        (60000,),
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        28881,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        60008,
    ),
    "test_images": IdxFile(
        "t10k-images-idx3-ubyte",
        (10000, 28, 28),
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        1648877,
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        7840016,
    ),
    "test_labels": IdxFile(
        "t10k-labels-idx1-ubyte",
        (10000,),
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        4542,
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        10008,
    ),
}


class IdxFormatError(ValueError):
    """A file that is not a well-formed IDX file."""


class ChecksumError(OSError):
    """A file whose SHA-256 differs from the published one."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (as stored: compressed files are not decompressed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzip-compressed or raw, told by its magic bytes).

    Returns
    -------
    ndarray with the file's shape and dtype (``uint8`` for MNIST), in native byte order.

    Raises :class:`IdxFormatError` when the header is malformed or the payload length
    does not match the declared dimensions.
    """
    path = Path(path).expanduser()
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4:
        raise IdxFormatError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise IdxFormatError(
            f"{path}: not an IDX file (header bytes {data[:4].hex()}); an IDX file starts "
            f"with two zero bytes, a type code in {sorted(hex(c) for c in _IDX_DTYPES)} and "
            "the number of dimensions"
        )
    header_end = 4 + 4 * ndim
    if len(data) < header_end:
        raise IdxFormatError(f"{path}: header declares {ndim} dimensions but the file ends early")
    shape = struct.unpack(f">{ndim}I", data[4:header_end])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    payload = len(data) - header_end
    if payload != expected:
        raise IdxFormatError(
            f"{path}: header declares shape {shape} of {dtype} ({expected} bytes of data) but "
            f"the file holds {payload}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header_end).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def find_mnist_files(directory: str | os.PathLike) -> dict[str, Path]:
    """Locate the four MNIST files in ``directory`` (standard names, ``.gz`` or raw).

    Returns ``{"train_images": path, "train_labels": …, "test_images": …,
    "test_labels": …}``; raises ``FileNotFoundError`` naming what is missing.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(
            f"MNIST directory {directory} does not exist; pass a directory that holds the "
            f"four IDX files ({', '.join(f.gz_name for f in MNIST_FILES.values())})"
        )
    found, missing = {}, []
    for key, spec in MNIST_FILES.items():
        for name in spec.candidate_names():
            if (directory / name).is_file():
                found[key] = directory / name
                break
        else:
            missing.append(spec.gz_name)
    if missing:
        raise FileNotFoundError(
            f"MNIST directory {directory} lacks {', '.join(missing)} (compressed or raw, "
            f"e.g. {MNIST_FILES['train_images'].stem}); download them with "
            f"fishsym.data.idx.download_mnist({str(directory)!r}) where a network is available"
        )
    return found


def verify_file(path: Path, spec: IdxFile, checksums: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the published SHA-256.

    A compressed file is held to ``spec.gz_sha256``, a raw one to ``spec.raw_sha256``.
    ``checksums`` (file stem → SHA-256) overrides the published values, for copies made
    by the user.
    """
    compressed = _is_gzip(path)
    if checksums is not None and spec.stem in checksums:
        expected = checksums[spec.stem]
    else:
        expected = spec.gz_sha256 if compressed else spec.raw_sha256
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{path} has SHA-256 {actual} but the published "
            f"{'compressed' if compressed else 'raw'} "
            f"file {spec.gz_name if compressed else spec.stem} has {expected}: the file is "
            "corrupt, truncated or a different data set; delete it and download it again "
            "(or pass verify=False to read it anyway)"
        )


def download_mnist(
    directory: str | os.PathLike,
    mirrors: Sequence[str] = MIRRORS,
    timeout: float = DOWNLOAD_TIMEOUT,
    checksums: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Download the four compressed files into ``directory`` and verify their SHA-256.

    Files already present with the right checksum are kept. A download is written to a
    temporary name and moved into place only after its checksum matched, so a failed or
    interrupted download never leaves a file that looks valid.

    Raises ``OSError`` with a clear message when no mirror can be reached (no network):
    the message says where to put the files by hand.
    """
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, spec in MNIST_FILES.items():
        target = directory / spec.gz_name
        if target.is_file():
            try:
                verify_file(target, spec, checksums)
                out[key] = target
                continue
            except ChecksumError:
                target.unlink()
        errors = []
        for mirror in mirrors:
            url = mirror + spec.gz_name
            partial = directory / (spec.gz_name + ".part")
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    partial.write_bytes(response.read())
                verify_file(partial, spec, checksums)
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                partial.unlink(missing_ok=True)
                errors.append(f"{url}: {exc}")
                continue
            partial.replace(target)
            out[key] = target
            break
        else:
            raise OSError(
                f"could not download a verified copy of {spec.gz_name} from any mirror "
                "(is there a network?):\n  " + "\n  ".join(errors) + "\nPlace the four MNIST files "
                f"({', '.join(f.gz_name for f in MNIST_FILES.values())}) "
                f"in {directory} by hand, or use the bundled 10,000 digits "
                "(fishsym.data.mnist_tensors), which need no network."
            )
    return out


def load_mnist_idx(
    directory: str | os.PathLike | None = None,
    *,
    download: bool = False,
    verify: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The full MNIST as numpy arrays ``(x_train, y_train, x_test, y_test)``.

    ``directory`` defaults to ``$FISHSYM_MNIST_DIR``. With ``download=True`` missing files
    are downloaded there first (needs a network). With ``verify=True`` (default) each
    file's SHA-256 must match the published one (or ``checksums[stem]``).

    Returns
    -------
    x_train: uint8 ``[N_train, 28, 28]``;  y_train: uint8 ``[N_train]``;
    x_test: uint8 ``[N_test, 28, 28]``;    y_test: uint8 ``[N_test]``
    (``N_train = 60000``, ``N_test = 10000`` for the real files).
    """
    if directory is None:
        directory = os.environ.get(MNIST_DIR_ENV)
        if not directory:
            raise FileNotFoundError(
                f"no MNIST directory given: pass directory=… or set ${MNIST_DIR_ENV}; the "
                "bundled 10,000 digits (fishsym.data.mnist_tensors) need neither"
            )
    if download:
        download_mnist(directory, checksums=checksums)
    paths = find_mnist_files(directory)
    arrays = {}
    for key, path in paths.items():
        spec = MNIST_FILES[key]
        if verify:
            verify_file(path, spec, checksums)
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise IdxFormatError(
                f"MNIST {split} split: images of shape {images.shape} and labels of shape "
                f"{labels.shape} do not pair up (expected [N, rows, cols] and [N])"
            )
    return (
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
    )


def mnist_idx_tensors(
    directory: str | os.PathLike | None = None,
    *,
    download: bool = False,
    verify: bool = True,
    dtype=None,
    checksums: Mapping[str, str] | None = None,
):
    """The full MNIST as torch tensors, like :func:`fishsym.data.mnist_tensors`.

    Pixels scaled to [0, 1] and flattened; labels ``int64``.

    Returns
    -------
    ``(x_train [N_train, rows·cols], y_train [N_train], x_test [N_test, rows·cols],
    y_test [N_test])``
    """
    import torch

    x_tr, y_tr, x_te, y_te = load_mnist_idx(
        directory, download=download, verify=verify, checksums=checksums
    )
    dtype = dtype or torch.float32

    def images(a):
        return torch.as_tensor(a.reshape(len(a), -1), dtype=dtype) / 255.0

    def labels(a):
        return torch.as_tensor(a.astype(np.int64))

    return images(x_tr), labels(y_tr), images(x_te), labels(y_te)


__all__ = [
    "MNIST_FILES",
    "MIRRORS",
    "MNIST_DIR_ENV",
    "IdxFile",
    "IdxFormatError",
    "ChecksumError",
    "read_idx",
    "find_mnist_files",
    "verify_file",
    "download_mnist",
    "load_mnist_idx",
    "mnist_idx_tensors",
    "sha256_file",
]
