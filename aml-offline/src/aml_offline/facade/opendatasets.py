"""``azureml.opendatasets`` in local mode: the Azure Open Datasets that Microsoft's v1 tutorials use, offline.

``azureml-opendatasets`` cannot be installed beside current pandas (it caps pandas below 2.1), and its
datasets live in Azure storage.  In local mode ``from azureml.opendatasets import MNIST, Diabetes`` gives these
classes (:mod:`aml_offline.boundary` puts this module in its place when the real one is missing, and takes
these names over when it is there), with the real package's class methods:

* ``MNIST.get_file_dataset()``: a file dataset of the four MNIST files at their Azure Open Datasets addresses.
  Its ``download()`` / ``as_mount()`` get them through the installed data sources (the ``aml_offline.data_sources``
  entry points: the walkthrough's gives its verified cache, a mirror, or the offline sample of real digits), else
  from the web, else a clear error.
* ``Diabetes.get_tabular_dataset()`` / ``get_pandas_dataframe()``: the diabetes data (442 rows: AGE, SEX, BMI,
  BP, S1-S6, Y), which scikit-learn ships, unscaled as Azure's copy is.

Any other open dataset raises :class:`~aml_offline.offline.NotAvailableOffline` naming it.
"""

from __future__ import annotations

from aml_offline.facade.datasets import FileDataset, TabularDataset
from aml_offline.offline import not_available
from aml_offline.store import LocalStore

MNIST_BASE = "https://azureopendatastorage.azurefd.net/mnist/"
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz")  # fmt: skip
DIABETES_COLUMNS = ["AGE", "SEX", "BMI", "BP", "S1", "S2", "S3", "S4", "S5", "S6", "Y"]
#: the open datasets this module answers for; any other name of azureml.opendatasets is refused clearly
AVAILABLE = ("MNIST", "Diabetes")


class MNIST:
    """The MNIST handwritten digits (60,000 training and 10,000 test images), as four files."""

    @classmethod
    def get_file_dataset(cls, enable_telemetry: bool = True):
        return FileDataset([MNIST_BASE + name for name in MNIST_FILES])

    @classmethod
    def get_tabular_dataset(cls, dataset_type: str = "train", enable_telemetry: bool = True):
        raise not_available(
            "MNIST.get_tabular_dataset",
            "use MNIST.get_file_dataset() and read the four files (the tutorials' utils.load_data does)",
        )


class Diabetes:
    """The diabetes data of Efron et al. (2004): ten baseline variables and a disease progression measure, Y."""

    @classmethod
    def get_pandas_dataframe(cls, enable_telemetry: bool = True):
        try:
            from sklearn.datasets import load_diabetes
        except ImportError:
            raise not_available(
                "Diabetes", "its offline copy comes from scikit-learn: pip install scikit-learn"
            ) from None
        import pandas as pd

        data = load_diabetes(scaled=False)
        frame = pd.DataFrame(data.data, columns=DIABETES_COLUMNS[:-1])
        frame["Y"] = data.target
        for column in frame.columns:  # whole numbers stay whole, as in the original table
            if (frame[column] % 1 == 0).all():
                frame[column] = frame[column].astype("int64")
        return frame

    @classmethod
    def get_tabular_dataset(cls, enable_telemetry: bool = True):
        target = LocalStore.get().root / "opendatasets" / "diabetes" / "diabetes.parquet"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            cls.get_pandas_dataframe().to_parquet(partial, index=False)
            partial.replace(target)
        return TabularDataset([str(target)], {"format": "ParquetFiles", "include_path": False})

    @classmethod
    def get_spark_dataframe(cls, enable_telemetry: bool = True):
        raise not_available("Diabetes.get_spark_dataframe", "there is no Spark offline: use get_pandas_dataframe()")


#: The other datasets azureml-opendatasets exports (its __init__): asked for, they raise NotAvailableOffline naming
#: them; any other name is an AttributeError, as on a real module (scanners such as skops probe modules' names)
REAL_ONLY = (
    "BostonSafety", "ChicagoSafety", "NewYorkCitySafety", "SanFranciscoSafety", "SeattleSafety", "NoaaGfsWeather",
    "NoaaIsdWeather", "NycTlcFhv", "NycTlcGreen", "NycTlcYellow", "OjSalesSimulated", "PublicHolidays",
    "SampleDataSet", "UsLaborCPI", "UsLaborEHENational", "UsLaborEHEState", "UsLaborLAUS", "UsLaborLFS",
    "UsLaborPPICommodity", "UsLaborPPIIndustry", "UsPopulationCounty", "UsPopulationZip", "TaxiGreen",
)  # fmt: skip


def __getattr__(name: str):
    if name not in REAL_ONLY:
        raise AttributeError(f"module 'azureml.opendatasets' (the local workspace's) has no attribute {name!r}")
    raise not_available(
        f"azureml.opendatasets.{name}",
        f"the local workspace has offline copies of {', '.join(AVAILABLE)} only; download the data yourself and use "
        "Dataset.File.from_files / Dataset.Tabular.from_delimited_files on it",
    )
