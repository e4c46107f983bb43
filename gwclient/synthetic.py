"""Synthetic strain: Gaussian noise coloured by a detector noise curve, with sine-Gaussian glitches.

Pure numpy, so it is cheap to import; `gwclient.sources.synthetic` wraps it in gwpy series.
Everything is drawn from generators seeded by ``(seed, detector)``, so the data of one detector
does not depend on which other detectors are asked for, and the glitches do not change the noise.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_START = 1_400_000_000.0
"""Default GPS start of synthetic data (2024-05-19), a plausible observing-run time."""

F_LOW = 10.0
"""Below this frequency (Hz) the noise curve is held flat: the analytic fit is not meant for it."""

# Rough sensitivity of each detector relative to the design aLIGO curve (amplitude factor); the
# shape is the same for all, which is enough for demos and load tests.
DETECTOR_SCALE = {"H1": 1.0, "L1": 0.9, "V1": 2.5, "K1": 6.0, "G1": 10.0}

_NOISE_STREAM = 0
_GLITCH_STREAM = 1


def aligo_psd(frequency: np.ndarray | float) -> np.ndarray:
    """One-sided noise PSD (strain²/Hz) of Advanced LIGO at design sensitivity, analytic fit.

    ``S(f) = 1e-49 [x^-4.14 - 5 x^-2 + 111 (1 - x^2 + x^4/2) / (1 + x^2/2)]``, ``x = f / 215 Hz``
    (Sathyaprakash & Schutz 2009, Living Rev. Relativ. 12, 2, table 1), held at its value at
    `F_LOW` below that frequency.
    """
    f = np.maximum(np.asarray(frequency, dtype=np.float64), F_LOW)
    x = f / 215.0
    return 1e-49 * (x**-4.14 - 5.0 * x**-2 + 111.0 * (1 - x**2 + x**4 / 2) / (1 + x**2 / 2))


def _rng(seed: int, detector: str, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(detector.encode("utf-8")), stream])


def coloured_noise(
    n: int, sample_rate: float, rng: np.random.Generator, scale: float = 1.0
) -> np.ndarray:
    """``n`` samples of stationary Gaussian noise whose one-sided PSD is ``scale² * aligo_psd``.

    Drawn in the frequency domain: each positive-frequency bin gets a complex Gaussian amplitude of
    variance ``n * S(f) / (2 dt)``, so the series' variance is the integral of ``S`` over the band.
    """
    if n <= 0:
        return np.zeros(0)
    dt = 1.0 / sample_rate
    freqs = np.fft.rfftfreq(n, dt)
    sigma = scale * np.sqrt(n * aligo_psd(freqs) / (4.0 * dt))
    spectrum = sigma * (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size))
    spectrum[0] = 0.0  # no DC offset
    if n % 2 == 0:
        spectrum[-1] = spectrum[-1].real * np.sqrt(2.0)  # the Nyquist bin is real
    return np.fft.irfft(spectrum, n)


@dataclass(frozen=True, slots=True)
class Glitch:
    """A sine-Gaussian added to one detector's data, centred on GPS ``time``."""

    detector: str
    time: float
    frequency: float
    q: float
    amplitude: float
    phase: float = 0.0

    @property
    def tau(self) -> float:
        """Gaussian width, seconds: ``Q / (sqrt(2) pi f0)``."""
        return self.q / (np.sqrt(2.0) * np.pi * self.frequency)

    def waveform(self, times: np.ndarray) -> np.ndarray:
        """The glitch sampled at ``times`` (GPS seconds)."""
        x = times - self.time
        envelope = np.exp(-((x / self.tau) ** 2))
        return self.amplitude * envelope * np.sin(2 * np.pi * self.frequency * x + self.phase)


def plan_glitches(
    detector: str,
    count: int,
    start: float,
    duration: float,
    seed: int = 0,
    times: Sequence[float] | None = None,
    sample_rate: float | None = None,
) -> list[Glitch]:
    """The glitches `synthetic_series` injects: ``count`` at seeded random times, or at ``times``.

    Random times keep 0.5 s (or a tenth of the span, if shorter) clear of both edges; central
    frequencies are log-uniform in 30-500 Hz (capped below Nyquist), Q in 4-20, amplitudes
    log-uniform in 3e-22 to 3e-21 strain: loud against the noise in band, as glitches are.
    """
    rng = _rng(seed, detector, _GLITCH_STREAM)
    margin = min(0.5, duration / 10)
    if times is None:
        times = np.sort(rng.uniform(start + margin, start + duration - margin, count)).tolist()
    top = 500.0 if sample_rate is None else min(500.0, sample_rate / 4)
    bottom = min(30.0, top / 2)
    glitches = []
    for t in times:
        glitches.append(
            Glitch(
                detector=detector,
                time=float(t),
                frequency=float(np.exp(rng.uniform(np.log(bottom), np.log(top)))),
                q=float(rng.uniform(4.0, 20.0)),
                amplitude=float(np.exp(rng.uniform(np.log(3e-22), np.log(3e-21)))),
                phase=float(rng.uniform(0, 2 * np.pi)),
            )
        )
    return glitches


def synthetic_series(
    detector: str,
    duration: float,
    sample_rate: float,
    start: float = DEFAULT_START,
    seed: int = 0,
    glitches: int | Sequence[float] = 0,
) -> tuple[np.ndarray, list[Glitch]]:
    """Samples of one detector and the glitches injected into them.

    Parameters
    ----------
    detector : str
        Interferometer prefix, e.g. ``"H1"``; sets the noise level (`DETECTOR_SCALE`) and the seed.
    duration : float
        Seconds; ``round(duration * sample_rate)`` samples are made.
    sample_rate : float
        Hz, any positive value.
    start : float
        GPS time of the first sample.
    seed : int
        Same seed, detector, duration and rate: same samples, bit for bit.
    glitches : int or sequence of float
        How many glitches to inject at seeded random times, or their GPS times.
    """
    if not sample_rate > 0:
        raise ValueError("sample_rate must be > 0")
    if not duration > 0:
        raise ValueError("duration must be > 0")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    n = round(duration * sample_rate)
    noise = coloured_noise(
        n, sample_rate, _rng(seed, detector, _NOISE_STREAM), DETECTOR_SCALE.get(detector, 1.0)
    )
    if isinstance(glitches, int):
        planned = plan_glitches(detector, glitches, start, duration, seed, sample_rate=sample_rate)
    else:
        planned = plan_glitches(
            detector, 0, start, duration, seed, times=glitches, sample_rate=sample_rate
        )
    if planned:
        times = start + np.arange(n) / sample_rate
        for glitch in planned:
            # Only the samples within 8 widths matter; the rest of the envelope is below 1e-27.
            reach = 8 * glitch.tau
            lo, hi = np.searchsorted(times, [glitch.time - reach, glitch.time + reach])
            noise[lo:hi] += glitch.waveform(times[lo:hi])
    return noise, planned
