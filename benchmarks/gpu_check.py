"""Check the GPU claims of the job environments on a machine with a GPU, in one command.

    make gpu-check        (or: python benchmarks/gpu_check.py --help)

The notebooks run these jobs on an Azure GPU cluster; this runs them the same way
here, so what they say about GPUs is checked wherever an NVIDIA GPU is at hand:

1. builds each training environment's pip packages into a fresh virtual environment,
   exactly as its yml lists them (``scripts/keras-gpu-env.yml``, what a GPU cluster gets: ``tensorflow[and-cuda]``,
   ``jax[cuda12]``...; ``scripts/chainer-env.yml``, with the ``setuptools<70`` build pin
   that ``scripts/chainer.Dockerfile`` gives pip on Azure), with ``uv``;
2. runs, each in that environment: ``scripts/keras_mnist.py`` as one process (Keras on
   JAX), the same script as 2 workers on 127.0.0.1 with a ``TF_CONFIG`` each (Keras on
   TensorFlow, ``MultiWorkerMirroredStrategy``), and ``scripts/chainer_mnist.py`` as the
   Chainer notebook runs it (on the CPU);
3. prints, per run, the device it trained on (from the script's own log line), its
   seconds per epoch and its test accuracy.

It fails (exit 1) when a run fails, or when this machine has a GPU (``nvidia-smi -L``
lists one) and a Keras run trained on the CPU anyway: the promise the notebooks make.
Without a GPU it says so, checks everything else and exits 0.

Data: full MNIST from the walkthrough's cache when it is there, else the offline
sample the data layer builds (no network needed). Environments are cached in
``--work-dir`` by a hash of their packages; ``--fresh`` rebuilds them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
SCRIPTS = PROJECT / "scripts"
sys.path.insert(0, str(PROJECT))

KERAS_ENV = SCRIPTS / "keras-gpu-env.yml"  # what the notebooks run on a GPU cluster
CHAINER_ENV = SCRIPTS / "chainer-env.yml"
CHAINER_DOCKERFILE = SCRIPTS / "chainer.Dockerfile"
NOT_PIP = {"python", "pip"}


@dataclass
class Result:
    name: str
    ok: bool
    device: str = "?"
    on_gpu: bool = False
    seconds_per_epoch: float | None = None
    test_accuracy: float | None = None
    note: str = ""


def driver_gpus() -> list[str]:
    """The GPUs the NVIDIA driver reports (``nvidia-smi -L``), or [] without one."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.splitlines() if line.startswith("GPU ")]


def pip_packages(yml: Path) -> list[str]:
    """The yml's pip list, as written (conda's ``python`` and ``pip`` are the venv's own)."""
    import yaml

    deps = yaml.safe_load(yml.read_text())["dependencies"]
    conda = [d for d in deps if isinstance(d, str) and re.split(r"[<>=!~ ]", d)[0] not in NOT_PIP]
    if conda:
        raise SystemExit(f"error: {yml.name} lists conda packages {conda}: add them to this check")
    return [p for d in deps if isinstance(d, dict) for p in d.get("pip", [])]


def build_constraints(dockerfile: Path) -> list[str]:
    """The build pins the Dockerfile writes for pip (``RUN echo "setuptools<70" > ...``)."""
    return re.findall(r'^RUN echo "([^"]+)" > /etc/pip-build-constraints\.txt', dockerfile.read_text(), re.M)


def build_env(name: str, packages: list[str], constraints: list[str], work: Path, fresh: bool) -> Path:
    """A virtual environment with exactly ``packages``; reused while they are unchanged."""
    from uv import find_uv_bin

    key = hashlib.sha256(json.dumps([sys.version, packages, constraints]).encode()).hexdigest()[:12]
    folder = work / f"{name}-{key}"
    python = folder / "bin" / "python"
    if (folder / ".built").exists() and not fresh:
        print(f"[{name}] reusing {folder}")
        return python
    shutil.rmtree(folder, ignore_errors=True)
    uv = find_uv_bin()
    pins = f" (build pins: {constraints})" if constraints else ""
    print(f"[{name}] building {folder}: {' '.join(packages)}{pins}")
    start = time.perf_counter()
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(folder)], check=True)
    command = [uv, "pip", "install", "--python", str(python), *packages]
    if constraints:
        pin_file = folder / "build-constraints.txt"
        pin_file.write_text("\n".join(constraints) + "\n")
        command[3:3] = ["--build-constraint", str(pin_file)]
    subprocess.run(command, check=True)
    (folder / ".built").write_text(time.strftime("%Y-%m-%d %H:%M:%S"))
    print(f"[{name}] built in {time.perf_counter() - start:.0f} s")
    return python


def find_data() -> tuple[Path, str]:
    """Full MNIST from the cache, else the offline sample (no download is tried)."""
    from helpers import data

    folder = data.cache_dir() / "mnist"
    if all((folder / n).is_file() and data.sha256(folder / n) == h for n, h in data.MNIST_SHA256.items()):
        return folder, "MNIST (from the cache)"
    sample = data.build_offline_sample()
    return sample.folder, data.OFFLINE_SAMPLE


def parse(name: str, log: str, returncode: int) -> Result:
    """Device, seconds per epoch and test accuracy from a training script's own log lines."""
    device = re.search(r"^(Training (?:with|on) .*)$", log, re.M)
    seconds = re.search(r"^Seconds per epoch \(median after the first\): ([\d.]+)", log, re.M)
    accuracy = re.search(r"^Final test accuracy: ([\d.]+)", log, re.M)
    line = device[1] if device else "no device line in the log"
    on_gpu = bool(device) and ("on GPU" in line) and "no GPU found" not in line
    tail = "" if returncode == 0 else " | ".join(log.strip().splitlines()[-3:])
    return Result(name, returncode == 0, line, on_gpu, float(seconds[1]) if seconds else None,
                  float(accuracy[1]) if accuracy else None, tail)  # fmt: skip


def run_keras_single(python: Path, data: Path, epochs: int, out: Path) -> Result:
    done = subprocess.run(
        [python, SCRIPTS / "keras_mnist.py", "--data-folder", data, "--epochs", str(epochs), "--seed", "0",
         "--output-dir", out / "single"],
        capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    (out / "keras-single.log").write_text(done.stdout + done.stderr)
    return parse("keras, 1 process (JAX)", done.stdout, done.returncode)


def run_keras_workers(python: Path, data: Path, epochs: int, out: Path, workers: int = 2) -> Result:
    """The script as ``workers`` processes on 127.0.0.1, each with its ``TF_CONFIG``, as Azure ML starts them."""
    from aml_offline import worker_environments  # the local workspace's own: what its runs' workers get

    procs = []
    for index, env in enumerate(worker_environments(dict(os.environ, PYTHONUNBUFFERED="1"), workers)):
        log = open(out / f"keras-worker-{index}.log", "w")  # noqa: SIM115  (closed below)
        command = [python, SCRIPTS / "keras_mnist.py", "--data-folder", data, "--epochs", str(epochs),
                   "--seed", "0", "--output-dir", out / f"worker-{index}"]  # fmt: skip
        procs.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env), log))
    codes = []
    for proc, log in procs:
        try:
            codes.append(proc.wait(timeout=1800))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
        log.close()
    chief = (out / "keras-worker-0.log").read_text()
    result = parse(f"keras, {workers} workers (TensorFlow)", chief, max(codes, key=abs))
    if result.ok:
        devices = {parse("", (out / f"keras-worker-{i}.log").read_text(), 0).device for i in range(workers)}
        result.note = f"each worker: {' / '.join(sorted(devices))}" if len(devices) > 1 else ""
    return result


def run_chainer(python: Path, data: Path, epochs: int, out: Path) -> Result:
    done = subprocess.run(
        [python, SCRIPTS / "chainer_mnist.py", "--data-folder", data, "--epochs", str(epochs), "--gpu_id", "-1",
         "--output_dir", out / "chainer"],
        capture_output=True, text=True,
    )  # fmt: skip
    (out / "chainer.log").write_text(done.stdout + done.stderr)
    result = parse("chainer (CPU, as the notebook runs it)", done.stdout, done.returncode)
    result.note = result.note or "CPU by design: Chainer 7.8.1 supports only CuPy 7 (no Python 3.11 / CUDA 12 build)"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    parser.add_argument("--work-dir", type=Path, default=PROJECT / "build" / "gpu-check", help="environments and logs")
    parser.add_argument("--fresh", action="store_true", help="rebuild the environments even when cached")
    args = parser.parse_args(argv)

    gpus = driver_gpus()
    print("GPUs (nvidia-smi -L):", "; ".join(gpus) if gpus else "none: no GPU on this machine, so the runs use the CPU")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    data, source = find_data()
    print(f"Data: {source} in {data}")

    results: list[Result] = []
    envs = [("keras-env", KERAS_ENV, []), ("chainer-env", CHAINER_ENV, build_constraints(CHAINER_DOCKERFILE))]
    out = Path(tempfile.mkdtemp(prefix="runs-", dir=args.work_dir))
    for name, yml, constraints in envs:
        try:
            python = build_env(name, pip_packages(yml), constraints, args.work_dir, args.fresh)
        except subprocess.CalledProcessError as exc:
            results.append(Result(f"{name}: build", False, note=f"the build failed (exit {exc.returncode})"))
            continue
        if name == "keras-env":
            results.append(run_keras_single(python, data, args.epochs, out))
            results.append(run_keras_workers(python, data, args.epochs, out))
        else:
            results.append(run_chainer(python, data, args.epochs, out))

    print(f"\nGPU check: {len(gpus)} GPU(s) on this machine; {args.epochs} epochs per run; logs in {out}\n")
    print(f"{'run':40} {'ok':4} {'s/epoch':>8} {'test acc':>9}  device (the script's own line)")
    failed = False
    for r in results:
        spe = f"{r.seconds_per_epoch:.2f}" if r.seconds_per_epoch is not None else "-"
        acc = f"{r.test_accuracy:.4f}" if r.test_accuracy is not None else "-"
        print(f"{r.name:40} {'yes' if r.ok else 'NO':4} {spe:>8} {acc:>9}  {r.device}")
        if r.note:
            print(f"{'':40}      {r.note}")
        failed |= not r.ok
        if gpus and r.ok and r.name.startswith("keras") and not r.on_gpu:
            print(f"{'':40}      FAIL: this machine has a GPU, and this run trained on the CPU")
            failed = True
    if not gpus:
        print("\nNo GPU here: the environments build and the runs work, but which device a GPU node uses is unchecked.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
