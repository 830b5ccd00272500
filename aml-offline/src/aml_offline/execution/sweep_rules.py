"""HyperDrive's sampling and early-termination rules, as pure functions on plain data.

The local workspace's HyperDrive supervisor (:mod:`aml_offline.hyperdrive`)
uses these on the JSON that azureml-core's own ``HyperDriveConfig`` produces
(``_generator_config``, ``_policy_config``, ``_primary_metric_config``), so the
rules can be tested without starting a single run.

Sampling follows the definitions in ``azureml.train.hyperdrive.parameter_expressions``:
``choice``, ``randint(upper)`` (0 to upper - 1), ``uniform``, ``quniform`` (rounded
to a multiple of q), ``loguniform`` (exp of a uniform value), ``qloguniform``,
``normal``, ``qnormal``, ``lognormal``, ``qlognormal``.

Early termination is applied to each child's primary-metric history, one entry
per time the child logged the metric (an "interval", as on Azure):

* ``Bandit``: at each evaluation interval a child is stopped when its value is
  worse than the best value any child reached at that interval, less the slack
  (``best / (1 + slack_factor)`` or ``best - slack_amount`` when maximizing).
* ``MedianStopping``: a child is stopped when its best value so far is worse than
  the median of the running averages of all children at that interval.
* ``TruncationSelection``: at each evaluation interval the lowest
  ``truncation_percentage`` per cent of the children are stopped.
* ``Default`` (``NoTerminationPolicy``): nothing is stopped.

Evaluation starts at interval ``delay_evaluation`` and repeats every
``evaluation_interval`` intervals.  A running child is judged at every evaluation
interval it has reached, against every child (running or finished) that reached
the same interval, so a child that runs ahead of the others is judged as soon as
they catch up.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Iterator

SUPPORTED_POLICIES = ("Default", "Bandit", "MedianStopping", "TruncationSelection")


class SweepError(ValueError):
    """A sweep the local workspace cannot run; the message says why and what to do."""


# --- sampling -------------------------------------------------------------------------------------


def sample_value(expression: list, rng: random.Random):
    """One value of a parameter expression such as ``['loguniform', [-6, -1]]``."""
    kind, args = expression
    if kind == "choice":
        return rng.choice(list(args[0]))
    if kind == "randint":
        return rng.randrange(int(args[0]))
    if kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        value = rng.uniform(args[0], args[1])
        if kind.endswith("loguniform"):
            value = math.exp(value)
    elif kind in ("normal", "qnormal", "lognormal", "qlognormal"):
        value = rng.gauss(args[0], args[1])
        if kind.endswith("lognormal"):
            value = math.exp(value)
    else:
        raise SweepError(f"Unknown parameter expression {kind!r}: use the functions of azureml.train.hyperdrive.")
    if kind.startswith("q"):
        q = args[2]
        value = round(value / q) * q
        if isinstance(q, int) and float(value).is_integer():
            value = int(value)
    return value


def _space_size(space: dict) -> int | None:
    """How many distinct configurations an all-``choice`` space has; None when it is continuous."""
    sizes = []
    for kind, args in space.values():
        if kind == "choice":
            sizes.append(len(args[0]))
        elif kind == "randint":
            sizes.append(int(args[0]))
        else:
            return None
    return math.prod(sizes)


def configurations(generator: dict, limit: int, seed: int) -> Iterator[dict]:
    """The parameter sets a sweep runs, in order: at most ``limit``, no configuration twice.

    ``generator`` is ``HyperDriveConfig._generator_config``: its ``name`` is
    ``RANDOM`` or ``GRID`` (``BAYESIANOPTIMIZATION`` is refused by the caller).
    """
    space = generator["parameter_space"]
    if generator["name"] == "GRID":
        names = list(space)
        grids = [space[n][1][0] for n in names]
        for values in itertools.islice(itertools.product(*grids), limit):
            yield dict(zip(names, values, strict=True))
        return
    rng = random.Random(seed)
    size = _space_size(space)
    if size is not None:
        limit = min(limit, size)
    seen: set[tuple] = set()
    tries = 0
    while len(seen) < limit and tries < 1000 * limit:
        tries += 1
        config = {name: sample_value(expr, rng) for name, expr in space.items()}
        key = tuple(sorted((k, repr(v)) for k, v in config.items()))
        if key in seen:
            continue
        seen.add(key)
        yield config


def seed_of(generator: dict) -> int | None:
    """The seed a ``RandomParameterSampling(..., properties={"rngSeed": N})`` asks for, if any."""
    props = generator.get("properties") or {}
    for key in ("rngSeed", "seed"):
        if props.get(key) is not None:
            return int(props[key])
    return None


def as_arguments(config: dict) -> list[str]:
    """A parameter set as script arguments, as HyperDrive passes them: ``--name value``."""
    args = []
    for name, value in config.items():
        args += [name if name.startswith("-") else f"--{name}", str(value)]
    return args


# --- early termination ----------------------------------------------------------------------------


def check_policy(policy: dict) -> None:
    if policy.get("name", "Default") not in SUPPORTED_POLICIES:
        raise SweepError(
            f"Early termination policy {policy.get('name')!r} is not one the local workspace knows; use "
            "BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy or NoTerminationPolicy."
        )


def _evaluation_points(count: int, interval: int, delay: int) -> list[int]:
    """The evaluation intervals (1-based) a child with ``count`` values has reached."""
    return [k for k in range(1, count + 1) if k >= delay and k % interval == 0]


def to_stop(policy: dict, maximize: bool, histories: dict[str, list[float]], active: set[str]) -> dict[str, str]:
    """Which active children the policy stops now: ``{run id: reason}``.

    ``histories`` holds every child's primary-metric values in the order they
    were logged (finished children included: they set the bar for the others).
    """
    name = policy.get("name", "Default")
    props = policy.get("properties") or {}
    if name == "Default":
        return {}
    interval = max(int(props.get("evaluation_interval", 1) or 1), 1)
    delay = int(props.get("delay_evaluation", 0) or 0)
    stop: dict[str, str] = {}
    for run_id in sorted(active):
        values = histories.get(run_id) or []
        for k in _evaluation_points(len(values), interval, delay):
            peers = {rid: vals for rid, vals in histories.items() if len(vals) >= k}
            reason = _judge(name, props, maximize, run_id, k, peers, active)
            if reason:
                stop[run_id] = reason
                break
    return stop


def _judge(name: str, props: dict, maximize: bool, run_id: str, k: int, peers: dict, active: set) -> str | None:
    """Why the policy stops ``run_id`` at interval ``k`` against the children that reached it, or None."""
    better = max if maximize else min
    values = peers[run_id]
    value = values[k - 1]
    if name == "Bandit":
        best = better(vals[k - 1] for vals in peers.values())
        if props.get("slack_factor") is not None:
            factor = float(props["slack_factor"])
            cutoff = best / (1 + factor) if maximize else best * (1 + factor)
            slack = f"slack factor {factor}"
        else:
            amount = float(props.get("slack_amount") or 0.0)
            cutoff = best - amount if maximize else best + amount
            slack = f"slack amount {amount}"
        if (value < cutoff) if maximize else (value > cutoff):
            return (
                f"BanditPolicy at interval {k}: {value:.4g} is outside the {slack} of the best value "
                f"{best:.4g} (cut-off {cutoff:.4g})"
            )
    elif name == "MedianStopping":
        if len(peers) < 2:
            return None
        median = statistics.median(statistics.fmean(vals[:k]) for vals in peers.values())
        own_best = better(values[:k])
        if (own_best < median) if maximize else (own_best > median):
            return (
                f"MedianStoppingPolicy at interval {k}: best value {own_best:.4g} is worse than the median "
                f"{median:.4g} of the running averages of {len(peers)} runs"
            )
    elif name == "TruncationSelection":
        if props.get("exclude_finished_jobs"):
            peers = {rid: vals for rid, vals in peers.items() if rid in active}
        n_cut = math.floor(len(peers) * float(props.get("truncation_percentage", 0)) / 100)
        ranked = sorted(peers, key=lambda rid: peers[rid][k - 1], reverse=not maximize)  # worst first
        if n_cut >= 1 and run_id in ranked[:n_cut]:
            return (
                f"TruncationSelectionPolicy at interval {k}: {value:.4g} is in the lowest "
                f"{props.get('truncation_percentage')}% of {len(peers)} runs"
            )
    return None
