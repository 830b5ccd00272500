"""helpers.names: the prefix that keeps a class's names apart in one shared workspace."""

import getpass
import re

import pytest

from helpers import names
from helpers.names import MAX_PREFIX, PrefixError, named, student_prefix

SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")  # azureml-core's rule for a web service name


def test_alone_in_a_local_workspace_there_is_no_prefix():
    assert student_prefix({}, mode="local") == ""
    assert named("keras-mnist", prefix="") == "keras-mnist"


@pytest.mark.parametrize(
    ("value", "prefix"),
    [("ana", "ana"), ("Ana María", "ana-mar-a"), ("  Bob_Smith ", "bob-smith"), ("none", ""), ("", "")],
)
def test_aml_prefix_is_cleaned_into_a_name_azure_accepts(value, prefix):
    assert student_prefix({"AML_PREFIX": value}, mode="azure") == prefix


def test_a_long_prefix_still_leaves_room_for_the_longest_name():
    prefix = student_prefix({"AML_PREFIX": "a" * 40}, mode="local")
    assert len(prefix) == MAX_PREFIX
    assert SERVICE_NAME.match(named("keras-mnist-svc", prefix=prefix))
    assert SERVICE_NAME.match(named("keras-mnist-v2", prefix=prefix))  # the v2 endpoint: the same rule


def test_a_prefix_that_cannot_start_a_name_says_what_to_use():
    with pytest.raises(PrefixError, match=r"AML_PREFIX='42'.*starting with a letter"):
        student_prefix({"AML_PREFIX": "42"}, mode="local")
    with pytest.raises(PrefixError, match="AML_PREFIX=none"):
        student_prefix({"AML_PREFIX": "--"}, mode="local")


def test_on_azure_the_default_is_the_login_or_the_compute_instance(monkeypatch):
    monkeypatch.setattr(getpass, "getuser", lambda: "Ana.Lima")
    assert student_prefix({}, mode="azure") == "ana-lima"
    monkeypatch.setattr(getpass, "getuser", lambda: names.COMPUTE_INSTANCE_USER)
    assert student_prefix({"CI_NAME": "ana-ci"}, mode="azure") == "ana-ci"
    monkeypatch.setattr(names.socket, "gethostname", lambda: "7ana-ci")
    assert student_prefix({}, mode="azure") == "s-7ana-ci"


def test_the_module_reads_the_mode_when_not_told(monkeypatch):
    monkeypatch.setenv("AZUREML_MODE", "local")
    monkeypatch.delenv("AML_PREFIX", raising=False)
    assert student_prefix() == ""
