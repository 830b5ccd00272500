"""Benchmark the local web service: requests per second and latency, as a table.

    make bench-serve            (or: python benchmarks/serve.py --help)

It trains a model for one epoch with the real training script (on full MNIST when
it is in the cache, else the offline sample), registers it in a throw-away local
workspace, deploys it with scripts/score.py behind Azure ML's inference server
(gunicorn, WORKER_COUNT workers, as on Azure), and then, for each request size and
number of concurrent clients, sends requests as fast as the clients can and
reports requests per second, digits per second, p50 and p99 latency and failures.
Each client opens a new connection per request, as a simple HTTP client does.
The service is deleted at the end, also when something fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def hammer(uri: str, key: str, body: bytes, clients: int, seconds: float) -> dict:
    """``clients`` threads POST ``body`` for ``seconds``; latencies of the answered ones, count of failures."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    def client():
        while time.perf_counter() < stop:
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(urllib.request.Request(uri, data=body, headers=headers), timeout=60) as r:
                    r.read()
                    ok = r.status == 200
            except (urllib.error.URLError, OSError):
                ok = False
            with lock:
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    failures[0] += 1

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    return {"n": len(latencies), "failed": failures[0], "elapsed": elapsed, "latencies": latencies}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8, help="how long each row sends requests (default 8)")
    parser.add_argument("--clients", default="1,4,8", help="numbers of concurrent clients (default 1,4,8)")
    parser.add_argument("--sizes", default="1,100", help="digits per request (default 1,100)")
    parser.add_argument("--workers", type=int, default=1, help="inference server workers (WORKER_COUNT, default 1)")
    args = parser.parse_args()

    from azureml.core import Environment
    from azureml.core.model import InferenceConfig
    from azureml.core.webservice import AciWebservice

    from helpers import data

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        os.environ["AZUREML_LOCAL_ROOT"] = str(Path(tmp) / "ws")
        from aml_offline import Model, Workspace

        files = data.fetch_mnist(progressbar=False)
        print(f"Training a model for 1 epoch on {files.source} ...", flush=True)
        subprocess.run(
            [sys.executable, str(PROJECT / "scripts" / "keras_mnist.py"), "--data-folder", str(files.folder),
             "--epochs", "1", "--output-dir", tmp],
            check=True, capture_output=True,
        )  # fmt: skip
        ws = Workspace.from_config()
        model = Model.register(ws, model_path=str(Path(tmp) / "model"), model_name="keras-mnist")
        env = Environment.from_conda_specification("keras-mnist-score", str(PROJECT / "scripts" / "score-env.yml"))
        env.environment_variables = {"WORKER_COUNT": str(args.workers)}
        config = InferenceConfig(entry_script="score.py", source_directory=str(PROJECT / "scripts"), environment=env)
        service = Model.deploy(ws, "bench", [model], config, AciWebservice.deploy_configuration(auth_enabled=True))
        try:
            service.wait_for_deployment()
            key = service.get_keys()[0]
            mnist = data.load_mnist(files.folder)
            x = (mnist.x_test.reshape(-1, 784) / 255.0).round(4)
            print(f"Service up at {service.scoring_uri} ({args.workers} worker(s)); {os.cpu_count()} CPU cores here.\n")
            header = f"{'digits/request':>14} {'clients':>7} {'requests':>8} {'req/s':>8} {'digits/s':>9} " \
                f"{'p50 ms':>8} {'p99 ms':>8} {'failed':>6}"  # fmt: skip
            print(header)
            print("-" * len(header))
            for size in [int(s) for s in args.sizes.split(",")]:
                body = json.dumps({"data": x[:size].tolist()}).encode()
                hammer(service.scoring_uri, key, body, 1, 1.0)  # warm-up
                for clients in [int(c) for c in args.clients.split(",")]:
                    r = hammer(service.scoring_uri, key, body, clients, args.seconds)
                    rps = r["n"] / r["elapsed"]
                    lat = r["latencies"] or [float("nan")]
                    print(f"{size:>14} {clients:>7} {r['n']:>8} {rps:>8.1f} {rps * size:>9.0f} "
                          f"{1000 * statistics.median(lat):>8.1f} {1000 * percentile(lat, 99):>8.1f} "
                          f"{r['failed']:>6}", flush=True)  # fmt: skip
        finally:
            service.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
