"""``python -m glitchflow_dataset``: the same as ``glitchflow-dataset``."""

from glitchflow_dataset.cli import console

console()
