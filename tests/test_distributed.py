"""Multi-worker training: TensorflowConfiguration runs as a real cluster of local worker processes."""

from __future__ import annotations

import json
import time

import pytest
from aml_offline import AmlCompute, ComputeTarget, Dataset, Experiment, RunDetails
from azureml.core import ScriptRunConfig
from azureml.core.runconfig import TensorflowConfiguration
from azureml.exceptions import UserErrorException
from support import PROJECT, script_dir


def _cluster(ws, max_nodes=2):
    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=max_nodes)
    target = ComputeTarget.create(ws, "cpu-cluster", config)
    target.wait_for_completion()
    return target


def _train(ws, target, workers: int, **kwargs):
    from helpers import data

    ds = Dataset.File.from_files(path=data.mnist_urls()).register(ws, "mnist-dataset", create_new_version=True)
    distributed = TensorflowConfiguration(worker_count=workers, parameter_server_count=0) if workers > 1 else None
    config = ScriptRunConfig(
        source_directory=str(PROJECT / "scripts"),
        script="keras_mnist.py",
        arguments=["--data-folder", ds.as_named_input("mnist").as_mount(), "--epochs", 3, "--seed", 1],
        compute_target=target,
        distributed_job_config=distributed,
        **kwargs,
    )
    run = Experiment(ws, "keras-mnist-distributed").submit(config)
    run.wait_for_completion(raise_on_error=True)
    return run


def test_two_workers_train_one_model_that_only_the_chief_saves(ws):
    target = _cluster(ws)
    single = _train(ws, target, workers=1)
    double = _train(ws, target, workers=2)

    details = double.get_details_with_logs()
    assert details["runDefinition"]["nodeCount"] == 2
    logs = details["logFiles"]
    worker_logs = [logs[f"user_logs/std_log_process_{i}.txt"] for i in range(2)]
    assert "Worker 0 of 2 (chief)" in worker_logs[0] and "Worker 1 of 2:" in worker_logs[1]
    for log in worker_logs:  # both took part in every epoch
        assert log.count("Epoch ") == 3 and "Final test accuracy" in log
    assert "Model saved to" in worker_logs[0] and "Model saved to" not in worker_logs[1]
    assert "is not the chief" in worker_logs[1]
    assert "outputs/model/model.keras" in double.get_file_names()

    metrics = double.get_metrics()
    assert len(metrics["Accuracy"]) == 3, "per-epoch metrics come from the chief only"
    assert not isinstance(metrics["Final test accuracy"], list), "logged once"
    meta = json.loads((_download(double, "outputs/model/metadata.json")).read_text())
    assert meta["training"]["workers"] == 2 and meta["versions"]["backend"] == "tensorflow"
    one, two = single.get_metrics()["Final test accuracy"], metrics["Final test accuracy"]
    assert abs(one - two) < 0.05, f"1 worker {one:.4f} vs 2 workers {two:.4f}"

    view = RunDetails(double)
    view.show()  # the run has ended: one refresh, no thread
    assert view._thread is None and "<span class='aml-run-workers'>2</span>" in view._summary.value
    assert view._log.value.count("class='aml-worker-log'") == 2 and "Worker 1 of 2:" in view._log.value


def _download(run, name):
    from pathlib import Path

    target = Path("downloaded") / run.id / Path(name).name
    run.download_file(name, str(target))
    return target


def test_each_worker_gets_its_own_tf_config_and_a_failing_worker_fails_the_run(ws, tmp_path):
    src = script_dir(
        tmp_path,
        """
        import json, os, sys, time
        config = json.loads(os.environ["TF_CONFIG"])
        print("TF_CONFIG", json.dumps(config, sort_keys=True), flush=True)
        if config["task"]["index"] == 1:
            sys.exit("worker 1 gives up")
        time.sleep(120)  # worker 0 would wait for its peer for ever: the run must stop it
        """,
    )
    config = ScriptRunConfig(
        source_directory=str(src),
        script="train.py",
        distributed_job_config=TensorflowConfiguration(worker_count=2, parameter_server_count=0),
    )
    started = time.monotonic()
    run = Experiment(ws, "tf-config").submit(config)
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Failed"
    assert time.monotonic() - started < 60, "the surviving worker was stopped, not waited for"
    error = run.get_details()["error"]["error"]["message"]
    assert "std_log_process_1.txt" in error and "worker 1 gives up" in error

    logs = run.get_details_with_logs()["logFiles"]
    configs = []
    for i in range(2):
        line = next(ln for ln in logs[f"user_logs/std_log_process_{i}.txt"].splitlines() if ln.startswith("TF_CONFIG"))
        configs.append(json.loads(line.removeprefix("TF_CONFIG ")))
    assert [c["task"] for c in configs] == [{"type": "worker", "index": 0}, {"type": "worker", "index": 1}]
    workers = configs[0]["cluster"]["worker"]
    assert configs[1]["cluster"]["worker"] == workers and len(set(workers)) == 2
    assert all(w.startswith("127.0.0.1:") for w in workers)


def test_worker_count_must_fit_the_cluster_and_parameter_servers_are_refused(ws, tmp_path):
    src = script_dir(tmp_path, "print('hi')\n")
    target = _cluster(ws, max_nodes=2)
    too_many = ScriptRunConfig(
        source_directory=str(src),
        script="train.py",
        compute_target=target,
        distributed_job_config=TensorflowConfiguration(worker_count=3, parameter_server_count=0),
    )
    with pytest.raises(UserErrorException, match="max_nodes=2"):
        Experiment(ws, "too-many").submit(too_many)
    with_ps = ScriptRunConfig(
        source_directory=str(src), script="train.py", distributed_job_config=TensorflowConfiguration(worker_count=2)
    )
    with pytest.raises(UserErrorException, match="parameter_server_count=0"):
        Experiment(ws, "with-ps").submit(with_ps)
