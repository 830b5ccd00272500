"""Pictures (and a table) for the notebooks: digits, class balance, training curves, confusion matrix, sweeps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from helpers.i18n import N_, _, use_language_font
from helpers.runs import per_epoch

#: The titles the notebooks give digit_grid (their code is English in every language): shown translated
NOTEBOOK_TITLES = (N_("Random training digits"), N_("Predictions of the Chainer model"))


def digit_grid(images, labels, predicted=None, n: int = 30, columns: int = 10, seed: int | None = 0, title=None):
    """A grid of ``n`` random digits with their labels; with ``predicted``, mistakes in red."""
    images = np.asarray(images).reshape(-1, 28, 28)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=min(n, len(images)), replace=False) if len(images) else []
    rows = max(1, -(-len(picks) // columns))
    use_language_font()
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 1.1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, picks, strict=False):
        ax.imshow(images[i], cmap="gray_r")
        if predicted is None:
            ax.set_title(str(labels[i]), fontsize=11)
        else:
            wrong = predicted[i] != labels[i]
            text = str(predicted[i])
            if wrong:
                text = _("{predicted} (true {true})").format(predicted=predicted[i], true=labels[i])
            ax.set_title(text, fontsize=9 if wrong else 11, color="red" if wrong else "black")
    if title:
        fig.suptitle(_(title))
    fig.tight_layout()
    plt.show()
    return fig


def class_balance(y_train, y_test):
    """Bar chart of how many images of each digit are in the training and test sets."""
    digits = np.arange(10)
    train = np.bincount(y_train, minlength=10)
    test = np.bincount(y_test, minlength=10)
    use_language_font()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(digits - 0.2, train, width=0.4, label=_("train ({count})").format(count=f"{train.sum():,}"))
    ax.bar(digits + 0.2, test, width=0.4, label=_("test ({count})").format(count=f"{test.sum():,}"))
    ax.set_xticks(digits)
    ax.set_xlabel(_("digit"))
    ax.set_ylabel(_("images"))
    ax.set_title(_("Class balance"))
    ax.legend()
    fig.tight_layout()
    plt.show()
    return fig


def metric_curves(metrics: dict, names=("Accuracy", "Loss")):
    """Per-epoch accuracy and loss of a run (measured on its validation split), from ``run.get_metrics()``."""
    use_language_font()
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        values = per_epoch(metrics, name) if name in metrics else []
        ax.plot(range(1, len(values) + 1), values, marker="o")
        ax.set_title(_("{metric} (validation set) per epoch").format(metric=name))
        ax.set_xlabel(_("epoch"))
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    plt.show()
    return fig


def confusion_matrix(y_true, y_pred):
    """A 10x10 confusion matrix: rows are true digits, columns predicted ones."""
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    use_language_font()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, count, ha="center", va="center", fontsize=8,
                    color="white" if count > matrix.max() / 2 else "black")  # fmt: skip
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel(_("predicted digit"))
    ax.set_ylabel(_("true digit"))
    ax.set_title(_("Confusion matrix (test set)"))
    fig.tight_layout()
    plt.show()
    return matrix


def sweep_results(children: list[dict], metric: str = "Accuracy", log_scale=("--learning-rate",)):
    """Each hyperparameter against the child's best ``metric``, one panel each; stopped runs as orange crosses.

    ``children`` is ``HyperDriveRun.get_children_sorted_by_primary_metric()``'s list (hyperparameters as JSON).
    """
    import json

    rows = [(json.loads(c["hyperparameters"] or "{}"), c["best_primary_metric"], c["status"]) for c in children]
    rows = [r for r in rows if r[1] is not None]
    names = sorted({name for params, _, _ in rows for name in params})
    use_language_font()
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(3.3 * max(len(names), 1), 3), squeeze=False, sharey=True)
    styles = {"Completed": dict(marker="o", color="tab:blue"), "Canceled": dict(marker="x", color="tab:orange")}
    for ax, name in zip(axes[0], names, strict=False):
        for status, style in [*styles.items(), ("Failed", dict(marker="s", color="tab:red"))]:
            points = [(p[name], v) for p, v, s in rows if s == status and name in p]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.scatter(xs, ys, label=_("stopped early") if status == "Canceled" else status.lower(), **style)
        if name in log_scale:
            ax.set_xscale("log")
        ax.set_xlabel(name.lstrip("-"))
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(_("best {metric}").format(metric=metric))
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    plt.show()
    return fig


def sweep_table(children: list[dict]):
    """``HyperDriveRun.get_children_sorted_by_primary_metric()`` as a table: one row per child, one column per
    hyperparameter, best primary metric and status (a pandas DataFrame, shown as a table in Jupyter)."""
    import json

    import pandas as pd

    rows = []
    for child in children:
        params = json.loads(child["hyperparameters"] or "{}")
        rows.append(
            {
                "run": child["run_id"].rsplit("_", 1)[-1],
                **{k.lstrip("-"): v for k, v in params.items()},
                "best metric": child["best_primary_metric"],
                "status": child["status"],
            }
        )
    return pd.DataFrame(rows).set_index("run")
