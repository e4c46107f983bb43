"""What the status page shows, built from counters the engine keeps as chunks arrive.

Nothing here lists the data folder: the channel summaries come from `databuffer.coverage`, the
rate from `databuffer.rate`, a page of stored chunks from the sorted index. The only files read
are the newest chunk of each channel (for its strain plot, cached by file name) and the manifests
of the few newest archives (cached by folder and modification time).
"""

from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from databuffer.archive import MANIFEST, Archive
from databuffer.index import ChannelIndex
from databuffer.naming import parse_filename
from glitchflow_archive import RESULTS
from glitchflow_core.chunk import ChunkError, parse_chunk

logger = logging.getLogger("databuffer.overview")

GAPS_SHOWN = 50
"""Longest gaps listed per channel; the count and total length cover all of them."""
PREVIEW_POINTS = 512
"""Most points in a strain preview: above it, each point is a (min, max) pair of a bucket."""
SPECTRUM_POINTS = 160
"""Most points in a preview's amplitude spectral density (log-spaced frequency bins)."""
ARCHIVES_SHOWN = 10
"""Newest archived batches summarised."""
RESULT_KEYS = ("upload", "export", "exported", "training", "trained", "report")
"""Manifest keys that record what happened to a batch after it was archived (shown as they are)."""


def channel_summary(channel: str, index: ChannelIndex) -> dict[str, Any]:
    """One channel of the current batch: counts, GPS span, rate, coverage, gaps, refusals."""
    coverage = index.coverage
    newest = index.newest
    dt = newest.dt if newest is not None else None
    return {
        "channel": channel,
        "n_itm": len(index),
        "bytes": index.nbytes,
        "start": coverage.start,
        "end": coverage.end,
        "dt": dt,
        "sample_rate": 1 / dt if dt else None,
        "covered_s": coverage.covered_seconds,
        "segment_count": len(coverage),
        "gap_count": coverage.gap_count,
        "gap_s": coverage.gap_seconds,
        "gaps": coverage.largest_gaps(GAPS_SHOWN),
        "refused": coverage.refused,
        "refused_spans": [list(span) for span in coverage.recent_refused],
        "recent": None,
    }


def chunk_entries(entries: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Stored chunks as ``{channel, t0, n, dt, bytes}``, read from their file names."""
    rows = []
    for name, nbytes in entries:
        identity = parse_filename(name)
        if identity is not None:  # the index holds only names it could parse
            rows.append(
                {
                    "channel": identity.channel,
                    "t0": identity.start,
                    "n": identity.n,
                    "dt": identity.dt,
                    "bytes": nbytes,
                }
            )
    return rows


def strain_preview(h: np.ndarray, t0: float, dt: float) -> dict[str, Any]:
    """A chunk's strain for a plot: a (min, max) envelope and, when long enough, its ASD."""
    n = len(h)
    buckets = min(n, PREVIEW_POINTS)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    low = np.minimum.reduceat(h, edges[:-1])
    high = np.maximum.reduceat(h, edges[:-1])
    doc: dict[str, Any] = {
        "t0": t0,
        "dt": dt,
        "n": n,
        "step": n / buckets,
        "min": low.tolist(),
        "max": high.tolist(),
    }
    if n >= 64:
        doc["asd"] = amplitude_spectrum(h, dt)
    return doc


def amplitude_spectrum(h: np.ndarray, dt: float) -> dict[str, list[float]]:
    """One-sided amplitude spectral density (Hann window), averaged into log-spaced bins."""
    window = np.hanning(len(h))
    spectrum = np.fft.rfft((h - h.mean()) * window)
    psd = 2.0 * dt * np.abs(spectrum) ** 2 / np.sum(window**2)
    freqs = np.fft.rfftfreq(len(h), dt)
    freqs, psd = freqs[1:], psd[1:]  # no DC
    bins = np.unique(np.geomspace(1, len(freqs), SPECTRUM_POINTS + 1).astype(int) - 1)
    f_out = []
    a_out = []
    for lo, hi in itertools.pairwise(bins):
        f_out.append(float(freqs[lo:hi].mean()))
        a_out.append(float(np.sqrt(psd[lo:hi].mean())))
    return {"f": f_out, "asd": a_out}


class RecentStrain:
    """Previews of chunk files by name; only the newest chunk of each channel is ever asked for."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._cache: dict[str, dict[str, Any]] = {}  # channel -> {"file": name, ...preview}
        self._lock = threading.Lock()

    def preview(self, channel: str, name: str, samples: int) -> dict[str, Any] | None:
        """The preview of ``channel``'s newest chunk file ``name`` (of ``samples`` samples).

        None when it cannot be read.
        """
        with self._lock:
            cached = self._cache.get(channel)
        if cached is not None and cached["file"] == name:
            return cached["preview"]
        try:
            chunk = parse_chunk((self.data_dir / name).read_bytes(), samples)
        except (OSError, ChunkError) as exc:
            # Flushed meanwhile, or unreadable: the next poll asks for the new newest chunk.
            logger.info("no strain preview of %s: %s", name, exc)
            return None
        preview = strain_preview(chunk.h, chunk.t0, chunk.dt)
        with self._lock:
            self._cache[channel] = {"file": name, "preview": preview}
        return preview


def archive_summary(
    manifest: dict[str, Any], recorded: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A manifest without its file list: counts, times, channel spans, and the results
    ``recorded`` for the batch (``results.json``: dataset, counts, the trainer's summary)."""
    channels = manifest.get("channels") if isinstance(manifest.get("channels"), dict) else {}
    summary = {
        key: manifest.get(key)
        for key in ("batch", "archive", "created", "frozen_at", "flushed_at", "frozen_reason")
    }
    summary["n_itm"] = manifest.get("n_f")
    summary["bytes"] = manifest.get("bt_wrt")
    summary["channels"] = {
        name: {
            "start": info.get("start"),
            "end": info.get("end"),
            "gaps": len(info.get("gaps") or []),
        }
        for name, info in channels.items()
        if isinstance(info, dict)
    }
    summary["results"] = {key: manifest[key] for key in RESULT_KEYS if key in manifest}
    summary["results"].update(recorded or {})
    return summary


class ArchiveSummaries:
    """`archive_summary` of the newest archives, re-read only when a manifest or the batch's
    recorded results change."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self._cache: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def newest(self, limit: int = ARCHIVES_SHOWN) -> tuple[list[dict[str, Any]], int]:
        """Summaries of the ``limit`` newest archives, newest first, and how many there are."""
        folders = self.archive.folders()
        summaries = [self._summary(folder) for folder in folders[:limit]]
        with self._lock:
            for gone in set(self._cache) - set(folders[:limit]):
                del self._cache[gone]
        return summaries, len(folders)

    def _summary(self, folder: str) -> dict[str, Any]:
        path = self.archive.root / folder / MANIFEST
        try:
            mtime = (path.stat().st_mtime_ns, _mtime(self.archive.root / folder / RESULTS))
            with self._lock:
                cached = self._cache.get(folder)
            if cached is not None and cached[0] == mtime:
                return cached[1]
            recorded = self.archive.results(folder) if mtime[1] else None
            summary = archive_summary(orjson.loads(path.read_bytes()), recorded)
        except (OSError, orjson.JSONDecodeError) as exc:
            return {"archive": folder, "error": f"manifest unreadable: {exc}"}
        with self._lock:
            self._cache[folder] = (mtime, summary)
        return summary


def _mtime(path: Path) -> int:
    """Modification time of ``path`` in ns; 0 when it is not there."""
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0
