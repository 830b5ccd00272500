"""Datastores, tabular datasets and run outputs of the local workspace, as azureml-core's samples use them."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from azureml.exceptions import UserErrorException


def _datastore(ws):
    return ws.get_default_datastore()


def test_the_default_datastore_is_workspaceblobstore_and_upload_prints_azures_progress(ws, capsys):
    from aml_offline.facade import Datastore

    Path("data/sub").mkdir(parents=True)
    Path("data/a.csv").write_text("x,y\n1,2\n")
    Path("data/sub/b.csv").write_text("x,y\n3,4\n")
    ds = _datastore(ws)
    assert ds.name == "workspaceblobstore" and ds.datastore_type == "AzureBlob"
    assert set(ws.datastores) >= {"workspaceblobstore", "workspacefilestore"}
    ds.upload(src_dir="data", target_path="tables", overwrite=True, show_progress=True)
    out = capsys.readouterr().out
    assert "Uploading an estimated of 2 files" in out and "Uploaded 2 files" in out
    ds.upload(src_dir="data", target_path="tables", overwrite=False)  # existing files are skipped, as on Azure
    assert "Target already exists. Skipping upload for tables/a.csv" in capsys.readouterr().out
    assert ds.download("copy", prefix="tables/sub", show_progress=False) == 1
    assert Path("copy/tables/sub/b.csv").read_text() == "x,y\n3,4\n"
    with pytest.raises(UserErrorException, match="was not found"):
        Datastore.get(ws, "nosuchstore")
    with pytest.raises(UserErrorException, match=r"inside the datastore"):
        ds.upload(src_dir="data", target_path="../escape")


def test_a_registered_blob_container_is_a_folder_and_databases_are_refused(ws):
    from aml_offline.facade import Datastore
    from aml_offline.offline import NotAvailableOffline

    blob = Datastore.register_azure_blob_container(ws, "mydata", "container", "account", account_key="secret")
    assert blob.container_name == "container" and blob.account_key is None  # a secret is never kept offline
    blob.set_as_default()
    assert ws.get_default_datastore().name == "mydata"
    assert "secret" not in (ws._store.root / "datastores.json").read_text()
    with pytest.raises(NotAvailableOffline, match="register_azure_sql_database"):
        Datastore.register_azure_sql_database(ws, "sql", "server", "db")
    blob.unregister()
    assert ws.get_default_datastore().name == "workspaceblobstore"


def test_file_and_tabular_datasets_read_datastore_paths_and_globs(ws):
    from aml_offline.facade import Dataset

    Path("d").mkdir()
    for i in range(3):
        pd.DataFrame({"x": range(i * 10, i * 10 + 10), "y": ["a"] * 10}).to_csv(f"d/part{i}.csv", index=False)
    Path("d/readme.txt").write_text("not a table")
    ds = _datastore(ws)
    ds.upload("d", target_path="parts", show_progress=False)
    files = Dataset.File.from_files(path=(ds, "parts/**"))
    assert sorted(files.to_path()) == ["/part0.csv", "/part1.csv", "/part2.csv", "/readme.txt"]
    table = Dataset.Tabular.from_delimited_files(path=[(ds, "parts/*.csv")])
    df = table.to_pandas_dataframe()
    assert len(df) == 30 and list(df.columns) == ["x", "y"]
    assert table.take(5).to_pandas_dataframe()["x"].tolist() == [0, 1, 2, 3, 4]
    train, test = table.random_split(percentage=0.8, seed=1)
    assert len(train.to_pandas_dataframe()) + len(test.to_pandas_dataframe()) == 30
    assert set(train.to_pandas_dataframe()["x"]).isdisjoint(test.to_pandas_dataframe()["x"])
    registered = table.keep_columns(["x"]).register(ws, "numbers", description="x only")
    again = Dataset.get_by_name(ws, "numbers")
    assert type(again).__name__ == "TabularDataset" and again.version == registered.version == 1
    assert list(again.to_pandas_dataframe().columns) == ["x"]
    with pytest.raises(UserErrorException, match="No file in datastore"):
        Dataset.Tabular.from_delimited_files(path=(ds, "parts/*.parquet"))
    with pytest.raises(UserErrorException, match="cannot be read"):
        Dataset.Tabular.from_parquet_files(path=(ds, "parts/readme.txt"))


def test_register_pandas_dataframe_writes_parquet_into_the_datastore(ws):
    from aml_offline.facade import Dataset

    frame = pd.DataFrame({"a": [1, 2, 3]})
    registered = Dataset.Tabular.register_pandas_dataframe(
        frame, (_datastore(ws), "frames"), "frame", show_progress=False
    )
    assert registered.to_pandas_dataframe()["a"].tolist() == [1, 2, 3]
    assert list((_datastore(ws)._folder / "frames").rglob("*.parquet"))


def test_a_run_reads_a_datastore_path_and_writes_an_output_that_is_registered_on_completion(ws):
    from azureml.core import ScriptRunConfig
    from azureml.data import OutputFileDatasetConfig

    from aml_offline.facade import Dataset, Experiment

    Path("in").mkdir()
    Path("in/n.txt").write_text("21")
    ds = _datastore(ws)
    ds.upload("in", target_path="numbers", show_progress=False)
    Path("src").mkdir()
    Path("src/double.py").write_text(
        "import sys, pathlib\n"
        "n = int(pathlib.Path(sys.argv[1], 'n.txt').read_text())\n"
        "pathlib.Path(sys.argv[2], 'doubled.txt').write_text(str(2 * n))\n"
    )
    output = OutputFileDatasetConfig(name="doubled", destination=(ds, "results/{run-id}")).register_on_complete(
        "doubled-numbers"
    )
    config = ScriptRunConfig(
        source_directory="src", script="double.py", arguments=[ds.path("numbers").as_mount(), output]
    )
    config.run_config.environment.python.interpreter_path = sys.executable
    run = Experiment(ws, "outputs").submit(config)
    run.wait_for_completion(raise_on_error=True)
    assert (ds._folder / "results" / run.id / "doubled.txt").read_text() == "42"
    dataset = Dataset.get_by_name(ws, "doubled-numbers")
    assert dataset.to_path() == ["/doubled.txt"]


def test_open_datasets_offline_and_a_clear_error_for_the_others():
    from aml_offline.facade import opendatasets
    from aml_offline.offline import NotAvailableOffline

    frame = opendatasets.Diabetes.get_pandas_dataframe()
    assert frame.shape == (442, 11) and list(frame.columns)[-1] == "Y"
    names = [p.rsplit("/", 1)[-1] for p in opendatasets.MNIST.get_file_dataset()._paths]
    assert names == list(opendatasets.MNIST_FILES)
    with pytest.raises(NotAvailableOffline, match="NycTlcGreen"):
        opendatasets.NycTlcGreen  # noqa: B018
    assert not hasattr(opendatasets, "__skops_probe__") and not hasattr(opendatasets, "anything_else")
