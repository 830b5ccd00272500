"""HyperDrive in the local workspace: sampling and policy rules, then real sweeps of real child runs."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import psutil
import pytest
from aml_offline import Dataset, Experiment, HyperDriveRun, RunDetails
from aml_offline.execution.sweep_rules import configurations, to_stop
from azureml.core import ScriptRunConfig
from azureml.exceptions import UserErrorException
from azureml.train.hyperdrive import (
    BanditPolicy,
    BayesianParameterSampling,
    GridParameterSampling,
    HyperDriveConfig,
    MedianStoppingPolicy,
    PrimaryMetricGoal,
    RandomParameterSampling,
    TruncationSelectionPolicy,
    choice,
    lognormal,
    loguniform,
    normal,
    qloguniform,
    quniform,
    randint,
    uniform,
)
from support import PROJECT, max_overlap, script_dir

# --- sampling ----------------------------------------------------------------------------------------

SPACE = {
    "--batch-size": choice(25, 50, 100),
    "--learning-rate": loguniform(-6, -1),
    "--dropout": uniform(0.1, 0.5),
    "--units": quniform(16, 256, 16),
    "--seed": randint(5),
    "--scale": normal(0, 1),
    "--lr2": qloguniform(0, 5, 10),
    "--ln": lognormal(0, 1),
}


def _random(space, n, seed):
    return list(configurations(RandomParameterSampling(space).to_json(), n, seed))


def test_random_sampling_is_reproducible_with_a_seed_and_respects_every_distribution():
    first = _random(SPACE, 50, seed=7)
    assert first == _random(SPACE, 50, seed=7)
    assert first != _random(SPACE, 50, seed=8)
    for c in first:
        assert c["--batch-size"] in (25, 50, 100)
        assert math.exp(-6) <= c["--learning-rate"] <= math.exp(-1)
        assert 0.1 <= c["--dropout"] <= 0.5
        assert c["--units"] % 16 == 0 and 16 <= c["--units"] <= 256 and isinstance(c["--units"], int)
        assert c["--seed"] in range(5)
        assert c["--lr2"] % 10 == 0
        assert c["--ln"] > 0
    assert len({c["--batch-size"] for c in first}) == 3, "every choice gets drawn"


def test_random_sampling_never_repeats_and_stops_when_a_discrete_space_is_used_up():
    space = {"--a": choice(1, 2), "--b": choice("x", "y", "z")}
    drawn = _random(space, 20, seed=1)
    assert len(drawn) == 6 and len({json.dumps(c, sort_keys=True) for c in drawn}) == 6


def test_grid_sampling_walks_the_grid_in_order_up_to_the_limit():
    grid = GridParameterSampling({"--a": choice(1, 2), "--b": choice(10, 20)}).to_json()
    assert list(configurations(grid, 10, seed=0)) == [
        {"--a": 1, "--b": 10}, {"--a": 1, "--b": 20}, {"--a": 2, "--b": 10}, {"--a": 2, "--b": 20},
    ]  # fmt: skip
    assert len(list(configurations(grid, 3, seed=0))) == 3


# --- early termination rules -------------------------------------------------------------------------


def _policy(policy):
    return policy.to_json()


def test_bandit_stops_a_child_outside_the_slack_at_evaluation_intervals_only():
    bandit = _policy(BanditPolicy(evaluation_interval=2, slack_factor=0.1))
    good, bad = [0.80, 0.90, 0.92], [0.10, 0.11, 0.12]
    assert to_stop(bandit, True, {"good": good, "bad": bad[:1]}, {"good", "bad"}) == {}, "not before interval 2"
    stopped = to_stop(bandit, True, {"good": good, "bad": bad[:2]}, {"good", "bad"})
    assert list(stopped) == ["bad"] and "interval 2" in stopped["bad"] and "0.8182" in stopped["bad"]
    assert to_stop(bandit, True, {"good": good[:1], "bad": bad[:2]}, {"bad"}) == {}, "no peer at interval 2 yet"
    near = {"good": [0.80, 0.90], "near": [0.80, 0.83]}
    assert to_stop(bandit, True, near, {"good", "near"}) == {}, "0.83 is within 0.90 / 1.1"
    amount = _policy(BanditPolicy(evaluation_interval=1, slack_amount=0.05))
    assert list(to_stop(amount, True, near, {"near"})) == ["near"]
    loss = _policy(BanditPolicy(evaluation_interval=1, slack_factor=0.1))
    assert list(to_stop(loss, False, {"a": [1.0], "b": [2.0]}, {"a", "b"})) == ["b"], "minimizing"


def test_a_bad_child_that_runs_ahead_is_judged_when_the_others_catch_up():
    bandit = _policy(BanditPolicy(evaluation_interval=2, slack_factor=0.1))
    ahead = {"bad": [0.1] * 12, "good": [0.8]}
    assert to_stop(bandit, True, ahead, {"bad", "good"}) == {}
    ahead["good"].append(0.9)
    assert "interval 2" in to_stop(bandit, True, ahead, {"bad", "good"})["bad"]


def test_bandit_waits_for_delay_evaluation():
    delayed = _policy(BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=3))
    histories = {"good": [0.9, 0.9, 0.9], "bad": [0.1, 0.1]}
    assert to_stop(delayed, True, histories, {"bad"}) == {}
    histories["bad"].append(0.1)
    assert list(to_stop(delayed, True, histories, {"bad"})) == ["bad"]


def test_median_stopping_and_truncation_selection():
    median = _policy(MedianStoppingPolicy(evaluation_interval=1))
    histories = {"a": [0.9, 0.92], "b": [0.85, 0.9], "c": [0.2, 0.3]}
    assert list(to_stop(median, True, histories, {"a", "b", "c"})) == ["c"]
    truncation = _policy(TruncationSelectionPolicy(truncation_percentage=50, evaluation_interval=1))
    four = {"a": [0.9], "b": [0.8], "c": [0.3], "d": [0.5]}
    assert sorted(to_stop(truncation, True, four, set(four))) == ["c", "d"]
    assert list(to_stop(truncation, True, four, {"a", "d"})) == ["d"], "only active children are stopped"


# --- real sweeps ---------------------------------------------------------------------------------------

FAKE_TRAINING = """
    import argparse, json, os, time
    from azureml.core import Run

    parser = argparse.ArgumentParser()
    parser.add_argument("--spans")
    parser.add_argument("--quality", type=float)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    run = Run.get_context()
    start = time.time()
    for i in range(args.steps):
        run.log("Accuracy", args.quality + i / 1000)
        time.sleep(0.4)
    with open(os.path.join(args.spans, f"{os.getpid()}.json"), "w") as f:
        json.dump([start, time.time()], f)
"""


def _sweep(src: Path, arguments, sampling, policy=None, total=4, concurrent=2, **kwargs) -> HyperDriveConfig:
    config = ScriptRunConfig(source_directory=str(src), script="train.py", arguments=arguments)
    return HyperDriveConfig(
        run_config=config,
        hyperparameter_sampling=sampling,
        policy=policy,
        primary_metric_name="Accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=total,
        max_concurrent_runs=concurrent,
        **kwargs,
    )


def test_sweep_caps_concurrency_keeps_every_metric_and_finds_the_best(ws, tmp_path):
    src = script_dir(tmp_path, FAKE_TRAINING)
    spans = tmp_path / "spans"
    spans.mkdir()
    qualities = [0.5, 0.9, 0.7, 0.6, 0.8]
    sampling = GridParameterSampling({"--quality": choice(*qualities)})
    run = Experiment(ws, "sweep").submit(_sweep(src, ["--spans", str(spans)], sampling, total=5, concurrent=2))
    assert isinstance(run, HyperDriveRun)
    run.wait_for_completion()
    assert run.get_status() == "Completed"

    children = list(run.get_children())
    assert len(children) == 5 and all(c.get_status() == "Completed" for c in children)
    measured = [tuple(json.loads(p.read_text())) for p in spans.glob("*.json")]
    assert len(measured) == 5
    assert max_overlap(measured) == 2, "never more than max_concurrent_runs at once, and the cap is used"

    metrics = run.get_metrics()
    for child in children:
        quality = json.loads(run.get_hyperparameters()[child.id])["--quality"]
        assert metrics[child.id]["Accuracy"] == [pytest.approx(quality + i / 1000) for i in range(8)], "none lost"
    ranked = run.get_children_sorted_by_primary_metric()
    assert [json.loads(c["hyperparameters"])["--quality"] for c in ranked] == sorted(qualities, reverse=True)
    best = run.get_best_run_by_primary_metric()
    assert best.id == ranked[0]["run_id"] and best.get_metrics()["Accuracy"][-1] == pytest.approx(0.907)
    assert run.get_properties()["best_child_run_id"] == best.id
    assert "--quality 0.9" in " ".join(best.get_details()["runDefinition"]["arguments"])
    assert [r.id for r in Experiment(ws, "sweep").get_runs()] == [run.id], "children are not top-level runs"
    assert isinstance(next(Experiment(ws, "sweep").get_runs()), HyperDriveRun)

    view = RunDetails(run)
    view.show()  # the run has ended: one refresh, no thread
    assert "aml-sweep-children" in view._children.value and view._children.value.count("<td>Completed</td>") == 5
    assert view._chart.value.startswith(b"\x89PNG"), "one accuracy line per child"


def test_canceling_the_sweep_cancels_its_children_and_ends_their_processes(ws, tmp_path):
    src = script_dir(tmp_path, FAKE_TRAINING)
    (tmp_path / "spans").mkdir()
    sampling = RandomParameterSampling({"--quality": uniform(0, 1)}, properties={"rngSeed": 3})
    sweep = _sweep(src, ["--spans", str(tmp_path / "spans"), "--steps", 1000], sampling, total=6, concurrent=2)
    run = Experiment(ws, "sweep").submit(sweep)
    deadline = time.time() + 120
    while time.time() < deadline and sum(c.get_status() == "Running" for c in run.get_children()) < 2:
        time.sleep(0.5)
    running = list(run.get_children())
    scripts = [p for p in psutil.process_iter(["cmdline"]) if "--steps" in " ".join(p.info["cmdline"] or [])]
    assert len(running) == 2 and scripts
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    assert [c.get_status() for c in run.get_children()] == ["Canceled", "Canceled"], "no new children after cancel"
    _, alive = psutil.wait_procs(scripts, timeout=10)
    assert not alive


def test_local_workspace_refuses_bayesian_sampling_with_a_way_out(ws, tmp_path):
    src = script_dir(tmp_path, FAKE_TRAINING)
    sweep = _sweep(src, [], BayesianParameterSampling({"--quality": uniform(0, 1)}), policy=None)
    with pytest.raises(UserErrorException, match="RandomParameterSampling"):
        Experiment(ws, "sweep").submit(sweep)


def test_bandit_cancels_a_diverging_training_run_while_the_good_one_completes(ws):
    """The real training script: a learning rate of 20 diverges, and the policy stops it early."""
    from helpers import data

    ds = Dataset.File.from_files(path=data.mnist_urls()).register(ws, "mnist-dataset", create_new_version=True)
    # Long enough that the policy acts before a diverging run finishes, on a fast machine too: an epoch of the
    # offline sample in batches of 50 takes about 0.05 s (one compiled call), so batches of 5 and 60 epochs
    # make each run train for about 12 s, well past the two children's difference in start-up.
    epochs = 60
    config = ScriptRunConfig(
        source_directory=str(PROJECT / "scripts"),
        script="keras_mnist.py",
        arguments=["--data-folder", ds.as_named_input("mnist").as_mount(), "--epochs", epochs, "--seed", 1,
                   "--batch-size", 5],
    )  # fmt: skip
    sweep = HyperDriveConfig(
        run_config=config,
        hyperparameter_sampling=GridParameterSampling({"--learning-rate": choice(0.001, 20.0)}),
        policy=BanditPolicy(evaluation_interval=2, slack_factor=0.1),
        primary_metric_name="Accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=2,
        max_concurrent_runs=2,
    )
    run = Experiment(ws, "keras-mnist-sweep").submit(sweep)
    run.wait_for_completion()
    children = run.get_children_sorted_by_primary_metric()
    by_rate = {json.loads(c["hyperparameters"])["--learning-rate"]: c for c in children}
    good, bad = by_rate[0.001], by_rate[20.0]
    assert good["status"] == "Completed" and bad["status"] == "Canceled"
    bad_run = run.experiment.get_runs(include_children=True)
    bad_run = next(r for r in bad_run if r.id == bad["run_id"])
    assert "BanditPolicy" in bad_run.get_details()["cancelReason"]
    assert 2 <= len(bad_run.get_metrics()["Accuracy"]) < epochs, "stopped after the evaluation interval, not at the end"
    assert run.get_best_run_by_primary_metric().id == good["run_id"]
    assert json.loads(run.get_tags()["_aml_system_primary_metric_config"]) == {"name": "Accuracy", "goal": "maximize"}

    view = RunDetails(run)
    view.show()
    table = view._children.value
    assert "2 child runs, 1 stopped early or canceled" in table and "Stopped because" in table
    assert "BanditPolicy" in table, "the view says why the child was stopped"
