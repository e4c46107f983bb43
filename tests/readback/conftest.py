"""gwpy imported once for the read-back tests (its astropy deprecation is nothing of ours)."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # gwpy 4.1 reads astropy's deprecated COPY_IF_NEEDED once, at import: import it here, once,
    # so that test modules can import gwpy at their top.
    warnings.filterwarnings("ignore", "COPY_IF_NEEDED is no longer needed")
    import gwpy.timeseries  # noqa: F401
