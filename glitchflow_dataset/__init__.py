"""Batch tools: export an archived batch to gwpy HDF5, condition it, train the reference model.

A library with a command line (`glitchflow_dataset.cli.main`); it imports no service. gwpy and
scikit-learn are imported where used, so importing this package stays cheap.
"""
