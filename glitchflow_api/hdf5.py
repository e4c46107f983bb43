"""The HDF5 form of a ``/data`` answer, written by gwpy.

Imported only when an HDF5 answer is asked for: gwpy costs seconds and ~200 MB to import, which
the API does not pay at start (STYLE.md), nor for JSON reads.

Layout, as ``glitchflow export`` writes a batch: ``/<channel>/<NNNN>`` one `TimeSeries` per
contiguous segment (from ``0000``), gaps never closed; the root's attributes name the channel,
the requested range and the gaps. Read it with ``TimeSeries.read(f, path="H1:.../0000")``.
"""

from __future__ import annotations

import io

import h5py
import numpy as np
import orjson
from gwpy.timeseries import TimeSeries

FORMAT = "glitchflow-data/1"
UNIT = "strain"


def data_file(answer: bytes) -> bytes:
    """The HDF5 bytes of the JSON ``/data`` answer ``answer``."""
    doc = orjson.loads(answer)
    channel = doc["channel"]
    segments = doc["segments"]
    out = io.BytesIO()
    with h5py.File(out, "w") as h5f:
        h5f.attrs["format"] = FORMAT
        h5f.attrs["channel"] = channel
        h5f.attrs["start"] = doc["start"]
        h5f.attrs["end"] = doc["end"]
        h5f.attrs["segments"] = len(segments)
        h5f.attrs["gaps"] = orjson.dumps(doc["gaps"]).decode()
        for number, segment in enumerate(segments):
            samples = doc["h"] if len(segments) == 1 else segment["h"]
            series = TimeSeries(
                np.asarray(samples, dtype=np.float64),
                t0=segment["t0"],
                dt=segment["dt"],
                unit=UNIT,
                name=channel,
                channel=channel,
            )
            series.write(h5f, path=f"{channel}/{number:04d}", format="hdf5")
    return out.getvalue()
