"""``python -m aml_offline``: the ``aml-offline`` command (:mod:`aml_offline.cli`)."""

import sys

from aml_offline.cli import main

sys.exit(main())
