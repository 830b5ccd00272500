"""`make wheelhouse`: every package file the project's environments need, in one folder, for a room with no network.

    python -m helpers.wheelhouse [FOLDER] [--lock FILE ...]

For each lock (``locks/*.txt``: the project, its build tools, the job environments)
it takes, for every locked package that this machine's platform installs, the one
file an installer would pick here (the best wheel, else the source package), checks
its SHA-256 against the lock and puts it in FOLDER (default ``wheelhouse/``).  The
MNIST files go to ``FOLDER/mnist/`` when they are in the data cache.  Files are
fetched once into a download cache (``~/.cache/azureml-keras-mnist/downloads``), so
a second run, or a run after ``make lock`` changed a few versions, fetches only
what is new.  The index is ``UV_INDEX_URL`` or ``PIP_INDEX_URL``, else PyPI.

Copy FOLDER to the machines (a USB stick, a shared drive) and run ``make install``
(or ``make run``) with it as ``wheelhouse/`` in the project, or ``WHEELHOUSE=FOLDER``:
every install then uses only that folder, and no network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from helpers.locks import BUILD_LOCK, LOCKS, PACKAGE_LOCK, PROJECT_LOCK, ROOT, RUNTIME_LOCK

DEFAULT_INDEX = "https://pypi.org/simple"


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    marker: str
    hashes: frozenset[str]


@dataclass(frozen=True)
class File:
    name: str
    url: str
    sha256: str
    size: int


def default_locks() -> list[Path]:
    """The project's lock, its build tools, then every job environment's lock (the runtime's and aml-offline's
    locks are parts of the project's)."""
    jobs = sorted(p for p in LOCKS.glob("*.txt") if p not in (PROJECT_LOCK, RUNTIME_LOCK, BUILD_LOCK, PACKAGE_LOCK))
    return [PROJECT_LOCK, BUILD_LOCK, *jobs]


def read_lock(path: Path) -> list[Locked]:
    """The packages of a hashed requirements lock (``uv pip compile --generate-hashes`` / ``uv export``)."""
    entries, current = [], None
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip() if not raw.lstrip().startswith("--hash") else raw.strip()
        if not line or line.startswith("#"):
            continue
        if line[0].isalnum():
            spec = line.rstrip("\\").strip()
            requirement, _, marker = spec.partition(";")
            name, _, version = requirement.strip().partition("==")
            current = [name.split("[")[0].strip(), version.strip(), marker.strip(), set()]
            entries.append(current)
        elif line.startswith("--hash=sha256:") and current is not None:
            current[3].add(line.rstrip("\\").strip().removeprefix("--hash=sha256:"))
    return [Locked(n, v, m, frozenset(h)) for n, v, m, h in entries]


def needed_here(entry: Locked) -> bool:
    from packaging.markers import Marker

    return not entry.marker or Marker(entry.marker).evaluate()


def index_url() -> str:
    return (os.environ.get("UV_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX).rstrip("/")


def candidates(session, entry: Locked) -> list[File]:
    """The index's files of the locked version whose hash the lock lists (PEP 691's JSON simple API)."""
    from packaging.utils import canonicalize_name

    url = f"{index_url()}/{canonicalize_name(entry.name)}/"
    response = session.get(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=60)
    response.raise_for_status()
    files = []
    for item in response.json()["files"]:
        digest = item.get("hashes", {}).get("sha256")
        if digest in entry.hashes and item.get("yanked") is not True:
            files.append(File(item["filename"], item["url"], digest, item.get("size") or 0))
    return files


def best_file(files: list[File], entry: Locked) -> File:
    """The file an installer picks on this machine: the wheel with the most specific compatible tag, else
    the source package."""
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    rank = {tag: i for i, tag in enumerate(sys_tags())}
    wheels = []
    for file in files:
        if file.name.endswith(".whl"):
            tags = parse_wheel_filename(file.name)[3]
            best = min((rank[t] for t in tags if t in rank), default=None)
            if best is not None:
                wheels.append((best, file))
    if wheels:
        return min(wheels, key=lambda pair: pair[0])[1]
    sdists = [f for f in files if f.name.endswith((".tar.gz", ".zip"))]
    if sdists:
        return sdists[0]
    raise SystemExit(f"{entry.name}=={entry.version}: no file for this platform among the lock's hashes")


def download_cache() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("azureml-keras-mnist")) / "downloads"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(session, file: File, folder: Path, bar) -> Path:
    """``file`` in ``folder``: from the download cache when it is there and verified, else downloaded."""
    cached = download_cache() / file.sha256[:2] / file.name
    if not (cached.is_file() and sha256(cached) == file.sha256):
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(cached.suffix + ".part")
        with session.get(file.url, stream=True, timeout=60) as response, open(partial, "wb") as out:
            response.raise_for_status()
            for block in response.iter_content(1 << 16):
                out.write(block)
                bar.update(len(block))
        if sha256(partial) != file.sha256:
            partial.unlink()
            raise SystemExit(f"{file.name}: the download's SHA-256 is not the lock's; try again")
        partial.replace(cached)
    else:
        bar.update(file.size)
    target = folder / file.name
    if not (target.is_file() and target.stat().st_size == cached.stat().st_size):
        shutil.copyfile(cached, target)
    return target


def gather(folder: Path, locks: list[Path] | None = None, mnist: bool = True, progress: bool = True) -> dict:
    """Fill ``folder`` with the files of ``locks`` for this platform (and MNIST from the cache); a summary."""
    import requests
    from tqdm import tqdm

    start = time.time()
    folder.mkdir(parents=True, exist_ok=True)
    wanted: dict[tuple[str, str], Locked] = {}
    for lock in locks or default_locks():
        for entry in read_lock(lock):
            if needed_here(entry):
                wanted.setdefault((entry.name.lower(), entry.version), entry)
    session = requests.Session()
    chosen = []
    for entry in tqdm(list(wanted.values()), desc="Looking up files", unit="pkg", disable=not progress):
        chosen.append(best_file(candidates(session, entry), entry))
    total = sum(f.size for f in chosen)
    with tqdm(total=total, desc="Gathering", unit="B", unit_scale=True, disable=not progress) as bar:
        kept = {fetch(session, f, folder, bar).name for f in chosen}
    for stale in folder.iterdir():  # files of versions no lock names any more
        if stale.is_file() and stale.name.endswith((".whl", ".tar.gz", ".zip")) and stale.name not in kept:
            stale.unlink()
    copied = _mnist(folder / "mnist") if mnist else 0
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"packages": len(kept), "mnist_files": copied, "bytes": size, "seconds": time.time() - start}


def _mnist(target: Path) -> int:
    """Copy the MNIST files that are in the data cache and verify; the count."""
    from helpers import data

    copied = 0
    for name, digest in data.MNIST_SHA256.items():
        source = data.cache_dir() / name
        if source.is_file() and data.sha256(source) == digest:
            target.mkdir(parents=True, exist_ok=True)
            if not (target / name).is_file():
                shutil.copyfile(source, target / name)
            copied += 1
    return copied


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="make wheelhouse", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=str(ROOT / "wheelhouse"))
    parser.add_argument("--lock", action="append", type=Path, help="a lock file (default: every one in locks/)")
    args = parser.parse_args(argv)
    folder = Path(args.folder).expanduser().resolve()
    done = gather(folder, args.lock)
    if done["mnist_files"] == 4:
        mnist = "and the 4 MNIST files"
    else:
        mnist = "without MNIST (not in the cache: run notebook 01 where the network works, then this again)"
    print(
        f"\nWheelhouse {folder}: {done['packages']} package files {mnist}, "
        f"{done['bytes'] / 2**20:.0f} MiB, in {done['seconds']:.0f} s."
    )
    print(
        f"Copy it to the students' machines and run `make install` with it as wheelhouse/ in the project, "
        f"or with WHEELHOUSE={folder}: no network needed. It serves {sys.platform} machines like this one."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
