"""The full-MNIST IDX loader, on small IDX files written here byte by byte."""

import gzip
import hashlib
import io
import struct
import urllib.error

import numpy as np
import pytest

from fishsym.data import idx

STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file by hand: 0x0000, type code 0x08 (uint8), ndim, big-endian dims, data."""
    assert array.dtype == np.uint8
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def small_mnist(rng, n_train=5, n_test=3, rows=4, cols=3):
    return {
        "train_images": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_dir(tmp_path, arrays, compress=True, dotted=False):
    sums = {}
    for key, arr in arrays.items():
        stem = STEMS[key].replace("-idx", ".idx") if dotted else STEMS[key]
        data = idx_bytes(arr)
        if compress:
            data = gzip.compress(data)
            name = stem + ".gz"
        else:
            name = stem
        (tmp_path / name).write_bytes(data)
        sums[STEMS[key]] = hashlib.sha256(data).hexdigest()
    return sums


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("dotted", [False, True], ids=["standard-names", "dotted-names"])
def test_reads_what_was_written(tmp_path, compress, dotted):
    arrays = small_mnist(np.random.default_rng(0))
    sums = write_dir(tmp_path, arrays, compress, dotted)
    x_tr, y_tr, x_te, y_te = idx.load_mnist_idx(tmp_path, checksums=sums)
    for got, key in zip((x_tr, y_tr, x_te, y_te), STEMS, strict=True):
        np.testing.assert_array_equal(got, arrays[key])
        assert got.dtype == np.uint8


def test_tensors_are_scaled_and_flattened(tmp_path):
    torch = pytest.importorskip("torch")
    arrays = small_mnist(np.random.default_rng(1))
    sums = write_dir(tmp_path, arrays)
    x_tr, y_tr, x_te, y_te = idx.mnist_idx_tensors(tmp_path, checksums=sums)
    assert x_tr.shape == (5, 12) and x_te.shape == (3, 12)
    assert y_tr.dtype == torch.int64
    expected = torch.as_tensor(arrays["train_images"].reshape(5, -1).astype(np.float64) / 255.0)
    assert torch.allclose(x_tr.double(), expected, atol=1e-7)
    assert float(x_tr.max()) <= 1.0 and float(x_tr.min()) >= 0.0


def test_published_checksums_reject_other_files(tmp_path):
    write_dir(tmp_path, small_mnist(np.random.default_rng(2)))
    with pytest.raises(idx.ChecksumError, match="SHA-256"):
        idx.load_mnist_idx(tmp_path)  # the published checksums of the real files
    # verify=False reads them anyway
    x_tr, *_ = idx.load_mnist_idx(tmp_path, verify=False)
    assert x_tr.shape == (5, 4, 3)


def test_wrong_checksum_is_reported(tmp_path):
    sums = write_dir(tmp_path, small_mnist(np.random.default_rng(3)))
    sums["t10k-labels-idx1-ubyte"] = "0" * 64
    with pytest.raises(idx.ChecksumError, match="t10k-labels"):
        idx.load_mnist_idx(tmp_path, checksums=sums)


def test_exported_by_fishsym_data():
    import fishsym.data

    assert fishsym.data.load_mnist_idx is idx.load_mnist_idx
    assert fishsym.data.mnist_idx_tensors is idx.mnist_idx_tensors


def test_published_table_is_self_consistent():
    assert set(idx.MNIST_FILES) == set(STEMS)
    for key, spec in idx.MNIST_FILES.items():
        assert spec.stem == STEMS[key]
        assert len(spec.gz_sha256) == 64 and len(spec.raw_sha256) == 64
        # raw size = 4-byte magic + 4 bytes per dimension + one byte per value
        assert spec.raw_bytes == 4 + 4 * len(spec.shape) + int(np.prod(spec.shape))


def test_missing_files_named(tmp_path):
    arrays = small_mnist(np.random.default_rng(4))
    write_dir(tmp_path, arrays)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        idx.load_mnist_idx(tmp_path, verify=False)


def test_no_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(idx.MNIST_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=idx.MNIST_DIR_ENV):
        idx.load_mnist_idx()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        idx.load_mnist_idx(tmp_path / "nowhere")


def test_directory_from_environment(monkeypatch, tmp_path):
    arrays = small_mnist(np.random.default_rng(5))
    sums = write_dir(tmp_path, arrays)
    monkeypatch.setenv(idx.MNIST_DIR_ENV, str(tmp_path))
    _, y_tr, _, _ = idx.load_mnist_idx(checksums=sums)
    np.testing.assert_array_equal(y_tr, arrays["train_labels"])


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab", "not an IDX file"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"ab", "not an IDX file"),
        (b"\x00\x00\x08\x02" + struct.pack(">I", 2), "ends early"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"ab", "holds 2"),
        (b"\x00\x00", "too short"),
    ],
    ids=["bad-magic", "bad-type", "short-header", "short-payload", "tiny"],
)
def test_malformed_files(tmp_path, payload, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(payload)
    with pytest.raises(idx.IdxFormatError, match=message):
        idx.read_idx(path)


def test_other_idx_types(tmp_path):
    arr = (np.arange(6) - 3).astype(">i4").reshape(2, 3)  # big-endian, as IDX stores it
    header = struct.pack(">HBB", 0, 0x0C, 2) + struct.pack(">2I", 2, 3)
    path = tmp_path / "ints"
    path.write_bytes(header + arr.tobytes())
    got = idx.read_idx(path)
    np.testing.assert_array_equal(got, np.arange(6).reshape(2, 3) - 3)
    assert got.dtype == np.dtype("int32")


def test_mismatched_split(tmp_path):
    arrays = small_mnist(np.random.default_rng(6))
    arrays["train_labels"] = arrays["train_labels"][:4]
    write_dir(tmp_path, arrays)
    with pytest.raises(idx.IdxFormatError, match="train split"):
        idx.load_mnist_idx(tmp_path, verify=False)


def test_download_offline_fails_clearly(monkeypatch, tmp_path):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(idx.urllib.request, "urlopen", offline)
    with pytest.raises(OSError, match="is there a network") as err:
        idx.load_mnist_idx(tmp_path, download=True)
    assert "by hand" in str(err.value)
    assert not list(tmp_path.glob("*.part"))


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_verifies_and_keeps_good_files(monkeypatch, tmp_path):
    arrays = small_mnist(np.random.default_rng(7))
    served = {STEMS[k] + ".gz": gzip.compress(idx_bytes(a)) for k, a in arrays.items()}
    sums = {name[:-3]: hashlib.sha256(data).hexdigest() for name, data in served.items()}
    requested = []

    def fake(url, timeout=None):
        requested.append(url)
        return _Response(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(idx.urllib.request, "urlopen", fake)
    x_tr, y_tr, x_te, y_te = idx.load_mnist_idx(tmp_path, download=True, checksums=sums)
    np.testing.assert_array_equal(x_te, arrays["test_images"])
    assert len(requested) == 4
    # present and verified: a second call downloads nothing
    idx.load_mnist_idx(tmp_path, download=True, checksums=sums)
    assert len(requested) == 4


def test_download_with_bad_checksum_leaves_nothing(monkeypatch, tmp_path):
    arrays = small_mnist(np.random.default_rng(8))
    served = {STEMS[k] + ".gz": gzip.compress(idx_bytes(a)) for k, a in arrays.items()}

    monkeypatch.setattr(
        idx.urllib.request,
        "urlopen",
        lambda url, timeout=None: _Response(served[url.rsplit("/", 1)[1]]),
    )
    with pytest.raises(OSError, match="SHA-256"):
        idx.download_mnist(tmp_path)  # the published checksums: the small files do not match
    assert not list(tmp_path.iterdir())
