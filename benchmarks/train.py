"""Benchmark training: a straight port of the original script against ours, and 1 worker against 2.

    make bench            (or: python benchmarks/train.py --help)

Every setup trains the original configuration (784-300-100-10, ReLU, softmax,
RMSprop 0.001, batch 50) on the same full-size data for the same epochs, each in
a fresh process, the setups taking turns (``--repeats`` rounds) so that a noisy
machine hurts them alike:

  (a) benchmarks/original_keras_port.py: plain ``model.fit``, default compile options
  (b) scripts/keras_mnist.py as the walkthrough runs it (its backend choice: JAX when installed)
  (b-host) the same with ``--host-loop``: each step dispatched from Python, as Keras 3.15's own JAX loop
       does, instead of the epoch's steps in one ``jax.lax.scan`` (scripts/on_device_steps.py)
  (b-tf) the same script on TensorFlow (``--backend tensorflow``)
  (c) the same script as 2 workers under MultiWorkerMirroredStrategy (TF_CONFIG on 127.0.0.1)

Data: full MNIST when it is in the walkthrough's cache, else full-size Fashion-MNIST
from Debian's dataset-fashion-mnist package (same IDX format, 60,000 + 10,000 images).

It prints, per setup: seconds per epoch (median over every epoch after each
process's first), training samples per second, the speed-up over (a), peak
memory (resident set; for (c) both workers together), final test accuracy (mean
over rounds), and the compute rate: 3 x 2 x (784*300 + 300*100 + 100*10), about
1.6 MFLOP, per training sample, as a share of this machine's float32
matrix-multiply rate, measured here in the same run (the best of NumPy and JAX).
The epoch time includes the epoch's validation pass, so the share is slightly
understated. It is a benchmark, not a test: it never fails on speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

CHILD_ENV = dict(os.environ)  # the runs' environment, before this process changes its own
FASHION = Path("/usr/share/datasets/fashion-mnist")
FLOP_PER_SAMPLE = 3 * 2 * (784 * 300 + 300 * 100 + 100 * 10)


def find_data() -> tuple[Path, str]:
    from helpers import data

    folder = data.cache_dir() / "mnist"
    if all((folder / name).is_file() and data.sha256(folder / name) == h for name, h in data.MNIST_SHA256.items()):
        return folder, "MNIST"
    if all((FASHION / name).is_file() for name in data.FILE_NAMES):
        return FASHION, "Fashion-MNIST (Debian's dataset-fashion-mnist)"
    raise SystemExit(
        "error: no full-size data. Install Fashion-MNIST with `sudo apt install dataset-fashion-mnist` "
        "(Debian/Ubuntu), or run notebook 01-data online to put full MNIST in the cache."
    )


def matmul_rate() -> tuple[float, str]:
    """This machine's float32 matrix-multiply rate in GFLOP/s: the best of NumPy and JAX, 2048 x 2048."""
    import numpy as np

    n, rates = 2048, {}
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    rates["NumPy"] = _best_rate(lambda: a @ a, n)
    try:
        # This process only measures: it must not take the GPU memory JAX preallocates (75%) from the runs after it
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        import jax
        import jax.numpy as jnp

        b = jnp.asarray(a)
        square = jax.jit(lambda m: m @ m)
        rates["JAX"] = _best_rate(lambda: square(b).block_until_ready(), n)
    except ImportError:
        pass
    best = max(rates, key=rates.get)
    return rates[best], ", ".join(f"{k} {v:.0f}" for k, v in rates.items())


def _best_rate(fn, n: int, repeats: int = 7) -> float:
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def devices() -> str:
    try:
        import jax

        gpus = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    except ImportError:
        gpus = []
    cpu = f"{os.cpu_count()} CPU cores"
    return f"GPU: {', '.join(gpus)} ({cpu})" if gpus else f"CPU only, {cpu}"


def run_processes(commands: list[tuple[list[str], dict]], log: Path) -> int:
    """Start the commands together, wait for all; their summed peak resident memory in MiB."""
    procs = []
    with open(log, "ab") as out:
        for command, env in commands:
            procs.append(subprocess.Popen(command, env={**CHILD_ENV, **env}, stdout=out, stderr=subprocess.STDOUT))
    peak_kib = 0
    failed = []
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        peak_kib += usage.ru_maxrss
        if proc.returncode != 0:
            failed.append(proc.returncode)
    if failed:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise SystemExit(f"error: a benchmark process exited with {failed}; the end of its output ({log}):\n{tail}")
    return peak_kib // 1024


def run_setup(name: str, folder: Path, epochs: int, work: Path) -> dict:
    out = work / f"{name}-{time.monotonic_ns()}"
    script = [sys.executable, str(PROJECT / "scripts" / "keras_mnist.py"), "--data-folder", str(folder)]
    script += ["--epochs", str(epochs), "--seed", "1"]
    if name == "a":
        port = [sys.executable, str(PROJECT / "benchmarks" / "original_keras_port.py"), "--data-folder", str(folder)]
        commands = [(port + ["--epochs", str(epochs), "--output-json", str(out.with_suffix(".json"))], {})]
    elif name == "c":  # the same cluster of processes the local workspace starts
        from aml_offline import worker_environments

        commands = [(script + ["--output-dir", str(out)], env) for env in worker_environments(dict(os.environ), 2)]
    else:
        flags = {"b-tf": ["--backend", "tensorflow"], "b-host": ["--host-loop"]}.get(name, [])
        commands = [(script + flags + ["--output-dir", str(out)], {})]
    started = time.perf_counter()
    peak = run_processes(commands, work / f"{name}.log")
    wall = time.perf_counter() - started
    result = json.loads(out.with_suffix(".json").read_text()) if name == "a" else _metadata(out)
    return {**result, "peak_mib": peak, "wall": wall}


def _metadata(out: Path) -> dict:
    meta = json.loads((out / "model" / "metadata.json").read_text())
    return {"epoch_seconds": meta["training"]["epoch_seconds"], "test_accuracy": meta["test_accuracy"]}


LABELS = {
    "a": "(a) original, Keras 3 port",
    "b": "(b) our script",
    "b-host": "(b-host) ours, a dispatch per step",
    "b-tf": "(b-tf) our script on TensorFlow",
    "c": "(c) our script, 2 workers",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per process; the first is the warm-up")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of every setup, taking turns")
    parser.add_argument("--setups", default="a,b,b-host,b-tf,c", help=f"comma-separated, from {','.join(LABELS)}")
    args = parser.parse_args()
    setups = args.setups.split(",")
    if unknown := set(setups) - set(LABELS):
        parser.error(f"unknown setups {sorted(unknown)}; choose from {', '.join(LABELS)}")
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is the warm-up")

    folder, source = find_data()
    limit, rates = matmul_rate()
    print(f"Data: {source} at {folder}")
    print(f"Device: {devices()}; float32 matmul GFLOP/s: {rates} (limit used: {limit:.0f})")
    print(f"{args.epochs} epochs per process, {args.repeats} rounds, setups taking turns\n", flush=True)

    results: dict[str, list[dict]] = {name: [] for name in setups}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        for round_ in range(args.repeats):
            for name in setups:
                print(f"round {round_ + 1}: {LABELS[name]} ...", end=" ", flush=True)
                results[name].append(run_setup(name, folder, args.epochs, Path(tmp)))
                print(f"{results[name][-1]['wall']:.0f} s", flush=True)
    print()
    print_table(results, limit, n_train=60000)
    return 0


def print_table(results: dict[str, list[dict]], limit: float, n_train: int) -> None:
    rows = {}
    for name, runs in results.items():
        steady = [t for r in runs for t in r["epoch_seconds"][1:]]
        per_epoch = statistics.median(steady)
        rows[name] = {
            "s/epoch": per_epoch,
            "samples/s": n_train / per_epoch,
            "peak": max(r["peak_mib"] for r in runs),
            "acc": statistics.mean(r["test_accuracy"] for r in runs),
        }
    base = rows.get("a")
    header = f"{'setup':34} {'s/epoch':>8} {'samples/s':>10} {'x (a)':>6} {'peak MiB':>9} {'test acc':>9} "
    print(header + f"{'GFLOP/s':>8} {'of limit':>9}")
    for name, row in rows.items():
        gflops = row["samples/s"] * FLOP_PER_SAMPLE / 1e9
        ratio = f"{row['samples/s'] / base['samples/s']:.2f}" if base else "-"
        print(
            f"{LABELS[name]:34} {row['s/epoch']:8.2f} {row['samples/s']:10.0f} {ratio:>6} {row['peak']:9d} "
            f"{row['acc']:9.4f} {gflops:8.1f} {gflops / limit:9.0%}"
        )
    if base and "b" in rows:
        diff = (rows["b"]["acc"] - base["acc"]) * 100
        print(f"\nTest accuracy, (b) - (a): {diff:+.2f} percentage points (mean over rounds).")


if __name__ == "__main__":
    sys.exit(main())
