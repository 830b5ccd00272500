"""The MNIST data layer, against fixture files served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from helpers import data
from helpers._scripts import mnist_idx


def _make_fixture_files(folder: Path, n_train: int = 30, n_test: int = 10) -> dict[str, str]:
    """Four small but real IDX files (digits from the offline sample) and their hashes."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    mnist_idx.write_idx(folder / mnist_idx.TRAIN_IMAGES, rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8))
    mnist_idx.write_idx(folder / mnist_idx.TRAIN_LABELS, rng.integers(0, 10, n_train, dtype=np.uint8))
    mnist_idx.write_idx(folder / mnist_idx.TEST_IMAGES, rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    mnist_idx.write_idx(folder / mnist_idx.TEST_LABELS, rng.integers(0, 10, n_test, dtype=np.uint8))
    return {name: data.sha256(folder / name) for name in mnist_idx.FILE_NAMES}


class _Handler(http.server.BaseHTTPRequestHandler):
    """/good/<file> serves the file; /missing/ answers 404; /truncated/ sends half the body
    with the full Content-Length; /tampered/ serves changed bytes with a matching length."""

    files: dict[str, bytes] = {}
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        mode, _, name = self.path.strip("/").partition("/")
        body = self.files.get(name)
        if body is None or mode == "missing":
            self.send_error(404)
            return
        if mode == "tampered":
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode == "truncated" else body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def fixture_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fixture")
    hashes = _make_fixture_files(folder)
    return folder, hashes


@pytest.fixture()
def server(fixture_files):
    folder, _ = fixture_files
    _Handler.files = {name: (folder / name).read_bytes() for name in mnist_idx.FILE_NAMES}
    _Handler.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_offline_notice_shown", False)
    return tmp_path / "cache"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_good_download_is_verified_cached_and_reused(server, cache, fixture_files, monkeypatch):
    folder, hashes = fixture_files
    monkeypatch.setenv("MNIST_MIRRORS", f"{server}/good/")
    files = data.fetch_mnist(registry=hashes, progressbar=False)
    assert files.source == mnist_idx.FULL_MNIST and not files.is_offline_sample
    for name in mnist_idx.FILE_NAMES:
        assert (files.folder / name).read_bytes() == (folder / name).read_bytes()
    assert len(_Handler.hits) == 4
    again = data.fetch_mnist(registry=hashes, progressbar=False)
    assert again.folder == files.folder
    assert len(_Handler.hits) == 4, "a verified cached file must not be downloaded again"
    arrays = data.load_mnist(files.folder)
    assert arrays.x_train.shape == (30, 28, 28) and arrays.y_test.shape == (10,)


def test_corrupt_cached_file_is_replaced(server, cache, fixture_files, monkeypatch):
    _, hashes = fixture_files
    monkeypatch.setenv("MNIST_MIRRORS", f"{server}/good/")
    files = data.fetch_mnist(registry=hashes, progressbar=False)
    (files.folder / mnist_idx.TEST_LABELS).write_bytes(b"garbage")
    data.fetch_mnist(registry=hashes, progressbar=False)
    assert data.sha256(files.folder / mnist_idx.TEST_LABELS) == hashes[mnist_idx.TEST_LABELS]


def test_404_mirror_falls_through_to_next(server, cache, fixture_files, monkeypatch):
    _, hashes = fixture_files
    monkeypatch.setenv("MNIST_MIRRORS", f"{server}/missing/ {server}/good/")
    files = data.fetch_mnist(registry=hashes, progressbar=False)
    assert not files.is_offline_sample
    assert any(h.startswith("/missing/") for h in _Handler.hits)


def test_down_mirror_then_working_one(server, cache, fixture_files, monkeypatch):
    _, hashes = fixture_files
    monkeypatch.setenv("MNIST_MIRRORS", f"{_closed_port_url()} {server}/good/")
    files = data.fetch_mnist(registry=hashes, progressbar=False)
    assert not files.is_offline_sample
    assert sorted(p.name for p in files.paths) == sorted(mnist_idx.FILE_NAMES)


def test_truncated_download_leaves_nothing_in_cache(server, cache, fixture_files, monkeypatch):
    _, hashes = fixture_files
    monkeypatch.setenv("MNIST_MIRRORS", f"{server}/truncated/")
    files = data.fetch_mnist(registry=hashes, progressbar=False)  # falls back: the mirror is broken
    assert files.is_offline_sample
    leftovers = list((cache / "mnist").glob("*")) if (cache / "mnist").exists() else []
    assert leftovers == [], f"partial downloads left behind: {leftovers}"


def test_wrong_hash_is_a_clear_error_and_nothing_is_kept(server, cache, fixture_files, monkeypatch):
    _, hashes = fixture_files
    monkeypatch.setenv("MNIST_MIRRORS", f"{server}/tampered/ {server}/good/")
    with pytest.raises(data.DownloadError) as err:
        data.fetch_mnist(registry=hashes, progressbar=False)
    message = str(err.value)
    first = mnist_idx.FILE_NAMES[0]
    assert first in message and hashes[first] in message and "got " in message
    assert "MNIST_MIRRORS" in message  # says what to do
    assert not (cache / "mnist" / first).exists()


def test_every_mirror_down_falls_back_to_offline_sample(cache, monkeypatch, capsys):
    monkeypatch.setenv("MNIST_MIRRORS", f"{_closed_port_url()} {_closed_port_url()}")
    files = data.fetch_mnist(progressbar=False)
    assert files.is_offline_sample and files.source == data.OFFLINE_SAMPLE
    data.fetch_mnist(progressbar=False)
    said = capsys.readouterr().out
    assert said.count("No MNIST mirror could be reached") == 1, "the fallback is announced once"
    arrays = mnist_idx.load_mnist(files.folder)
    assert arrays.x_train.shape == (4000, 28, 28) and arrays.x_test.shape == (1000, 28, 28)
    assert arrays.source == data.OFFLINE_SAMPLE
    # stratified: every digit keeps its share in the test split
    counts = np.bincount(arrays.y_test, minlength=10)
    assert counts.min() >= 80 and counts.sum() == 1000
    assert arrays.x_train.max() > 200, "real digits, not blank images"


def test_offline_sample_can_be_refused(cache, monkeypatch):
    monkeypatch.setenv("MNIST_MIRRORS", _closed_port_url())
    with pytest.raises(data.DownloadError, match="No MNIST mirror could be reached"):
        data.fetch_mnist(progressbar=False, allow_offline_sample=False)


def test_mnist_urls_use_azure_open_datasets_first(monkeypatch):
    monkeypatch.delenv("MNIST_MIRRORS", raising=False)
    urls = data.mnist_urls()
    assert urls[0] == "https://azureopendatastorage.blob.core.windows.net/mnist/train-images-idx3-ubyte.gz"
    assert [u.rsplit("/", 1)[1] for u in urls] == list(mnist_idx.FILE_NAMES)


# --- the IDX reader ------------------------------------------------------------------


def test_idx_round_trip(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    mnist_idx.write_idx(tmp_path / "x.gz", images)
    assert np.array_equal(mnist_idx.read_idx(tmp_path / "x.gz", 3), images)


def test_idx_bad_magic_names_file(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x0d\x03" + b"\x00" * 12)
    with pytest.raises(mnist_idx.IdxError, match="bad.gz.*magic"):
        mnist_idx.read_idx(path)


def test_idx_truncated_data_names_file(tmp_path):
    path = tmp_path / "short.gz"
    mnist_idx.write_idx(path, np.zeros((3, 28, 28), np.uint8))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(mnist_idx.IdxError, match="short.gz.*truncated"):
        mnist_idx.read_idx(path)


def test_idx_not_gzip_names_file(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(mnist_idx.IdxError, match="plain.gz.*gzip"):
        mnist_idx.read_idx(path)


def test_idx_wrong_dimensions(tmp_path):
    path = tmp_path / "labels.gz"
    mnist_idx.write_idx(path, np.zeros(5, np.uint8))
    with pytest.raises(mnist_idx.IdxError, match="labels.gz.*expected images"):
        mnist_idx.read_idx(path, 3)


def test_count_mismatch_between_images_and_labels(tmp_path, fixture_files):
    folder, _ = fixture_files
    target = tmp_path / "nested" / "deeper"
    target.mkdir(parents=True)
    for name in mnist_idx.FILE_NAMES:
        (target / name).write_bytes((folder / name).read_bytes())
    mnist_idx.write_idx(target / mnist_idx.TEST_LABELS, np.zeros(3, np.uint8))
    with pytest.raises(mnist_idx.IdxError, match="10 images but .* 3 labels"):
        mnist_idx.load_mnist(tmp_path)


def test_missing_file_says_what_and_where(tmp_path):
    (tmp_path / mnist_idx.TRAIN_IMAGES).write_bytes(b"")
    with pytest.raises(mnist_idx.MissingDataError) as err:
        mnist_idx.find_mnist_folder(tmp_path)
    assert mnist_idx.TEST_LABELS in str(err.value) and str(tmp_path) in str(err.value)
