"""helpers.runs: a metric logged once or many times reads as a list."""

import pytest

from helpers.runs import per_epoch


def test_one_value_and_many_values_both_read_as_a_list():
    assert per_epoch({"Accuracy": 0.91}, "Accuracy") == [0.91]
    assert per_epoch({"Accuracy": [0.89, 0.91]}, "Accuracy") == [0.89, 0.91]


def test_a_metric_the_run_did_not_log_names_what_it_did_log():
    with pytest.raises(KeyError, match="no metric 'Acc'.*Accuracy, Loss"):
        per_epoch({"Accuracy": 0.9, "Loss": 0.3}, "Acc")
