"""Optional conditioning of exported segments with gwpy: resample, band-pass, whiten, Q-transform.

The config is a small TOML or JSON file; every section is optional::

    [resample]
    rate = 2048            # Hz
    [bandpass]
    low = 20               # Hz
    high = 500
    [whiten]
    fftlength = 2          # s
    overlap = 1
    [qtransform]
    frange = [20, 500]     # Hz
    qrange = [4, 64]
    tres = 0.05            # s between output columns
    fres = 4               # Hz between output rows (linear: gwpy writes only regular axes)

Time-domain steps run in the order resample, band-pass, whiten on each raw segment; the
Q-transform (which whitens by itself) runs on the raw segment. The raw samples are always kept.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from glitchflow_dataset.errors import DatasetError

if TYPE_CHECKING:
    from gwpy.spectrogram import Spectrogram
    from gwpy.timeseries import TimeSeries


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resample(_Section):
    rate: float

    @model_validator(mode="after")
    def _positive(self) -> Resample:
        if not self.rate > 0:
            raise ValueError("rate must be > 0")
        return self


class Bandpass(_Section):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Bandpass:
        if not 0 < self.low < self.high:
            raise ValueError("needs 0 < low < high")
        return self


class Whiten(_Section):
    fftlength: float = 2.0
    overlap: float | None = None

    @model_validator(mode="after")
    def _lengths(self) -> Whiten:
        if not self.fftlength > 0:
            raise ValueError("fftlength must be > 0")
        if self.overlap is not None and not 0 <= self.overlap < self.fftlength:
            raise ValueError("overlap must be in [0, fftlength)")
        return self


class QTransform(_Section):
    frange: tuple[float, float] = (20.0, 500.0)
    qrange: tuple[float, float] = (4.0, 64.0)
    tres: float = 0.05
    fres: float = 4.0

    @model_validator(mode="after")
    def _ranges(self) -> QTransform:
        if not 0 < self.frange[0] < self.frange[1]:
            raise ValueError("frange needs 0 < low < high")
        if not 0 < self.qrange[0] <= self.qrange[1]:
            raise ValueError("qrange needs 0 < low <= high")
        if not self.tres > 0 or not self.fres > 0:
            raise ValueError("tres and fres must be > 0")
        return self


class Conditioning(_Section):
    """What to do to each segment; every step optional."""

    resample: Resample | None = None
    bandpass: Bandpass | None = None
    whiten: Whiten | None = None
    qtransform: QTransform | None = None

    @property
    def time_domain(self) -> bool:
        """True when a conditioned time series is made (any step but the Q-transform)."""
        return any((self.resample, self.bandpass, self.whiten))

    def describe(self) -> str:
        """The steps in order, one line, for the file's attributes."""
        steps = []
        if self.resample:
            steps.append(f"resample(rate={self.resample.rate:g} Hz)")
        if self.bandpass:
            steps.append(f"bandpass({self.bandpass.low:g}-{self.bandpass.high:g} Hz)")
        if self.whiten:
            steps.append(
                f"whiten(fftlength={self.whiten.fftlength:g} s, overlap={self.whiten.overlap})"
            )
        if self.qtransform:
            q = self.qtransform
            steps.append(
                f"qtransform(frange={q.frange[0]:g}-{q.frange[1]:g} Hz, "
                f"qrange={q.qrange[0]:g}-{q.qrange[1]:g}, tres={q.tres:g} s, "
                f"fres={q.fres:g} Hz, whitened)"
            )
        return " -> ".join(steps) or "none"

    def as_json(self) -> str:
        """The config as JSON, for the file's attributes."""
        return self.model_dump_json(exclude_none=True)


def load_conditioning(path: Path) -> Conditioning:
    """The conditioning config from a ``.toml`` or ``.json`` file.

    Raises
    ------
    DatasetError
        Unreadable file, bad syntax, or a field that is unknown or out of range (named).
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DatasetError(f"condition config {path}: {exc.strerror or exc}") from exc
    try:
        doc: Any = tomllib.loads(raw.decode()) if path.suffix == ".toml" else orjson.loads(raw)
    except (tomllib.TOMLDecodeError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"condition config {path}: not valid TOML/JSON ({exc})") from exc
    try:
        return Conditioning.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        raise DatasetError(f"condition config {path}: {where}: {err['msg']}") from exc


def condition_series(series: TimeSeries, config: Conditioning) -> TimeSeries:
    """``series`` resampled, band-passed and whitened as ``config`` asks (gwpy)."""
    out = series
    if config.resample:
        out = out.resample(config.resample.rate)
    if config.bandpass:
        out = out.bandpass(config.bandpass.low, config.bandpass.high)
    if config.whiten:
        out = out.whiten(fftlength=config.whiten.fftlength, overlap=config.whiten.overlap)
    return out


def q_tiles(series: TimeSeries, config: QTransform) -> Spectrogram:
    """The whitened Q-transform of ``series`` (gwpy), median-normalised energy."""
    return series.q_transform(
        frange=config.frange, qrange=config.qrange, tres=config.tres, fres=config.fres, whiten=True
    )
