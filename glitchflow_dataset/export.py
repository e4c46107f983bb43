"""Export an archived batch to one HDF5 file written by gwpy.

Layout (every dataset written by gwpy's own HDF5 writers)::

    /<channel>/<NNNN>            raw TimeSeries, one per contiguous segment (NNNN from 0000)
    /segments/<channel>          DataQualityFlag: known = the channel's span, active = segments
    /conditioned/<channel>/<NNNN> conditioned TimeSeries (with a conditioning config)
    /qtransform/<channel>/<NNNN>  Q-transform Spectrogram (with a [qtransform] section)

The root's attributes say what the file is: format, batch, archive, channels, chunk count, pad
gaps, conditioning steps. Read one channel with
``TimeSeriesDict.read(path, group=channel)`` or one segment with
``TimeSeries.read(path, path=f"{channel}/0000")``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from glitchflow_archive import ArchiveStore, BatchRef, Manifest
from glitchflow_core.chunk import Chunk
from glitchflow_dataset.condition import Conditioning, condition_series, q_tiles
from glitchflow_dataset.errors import DatasetError
from glitchflow_dataset.reader import read_batch
from glitchflow_dataset.segments import Segment, join_segments, pad_gaps

FORMAT = "glitchflow-dataset/1"
UNIT = "strain"
"""Every channel the buffer carries is detector strain (dimensionless)."""
SEGMENTS_GROUP = "segments"
CONDITIONED_GROUP = "conditioned"
QTRANSFORM_GROUP = "qtransform"


@dataclass(slots=True)
class ExportSummary:
    """What an export wrote."""

    out: Path
    batch: int
    archive: str
    chunks: int
    chunk_bytes: int
    channels: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line for the terminal."""
        segs = sum(len(s) for s in self.channels.values())
        return (
            f"exported batch {self.batch} ({self.chunks} chunks, {self.chunk_bytes} bytes, "
            f"{len(self.channels)} channels, {segs} segments) to {self.out}"
        )


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """A temporary path beside ``out``, renamed to ``out`` (fsynced) only if the block succeeds."""
    out = Path(out)
    if out.is_dir():
        raise DatasetError(f"--out {out} is a folder")
    # The DAG's export pod writes to a per-batch folder of a fresh volume: make it.
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"--out {out}: cannot make folder {out.parent}: {exc.strerror}") from exc
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _series(segment: Segment):  # -> gwpy TimeSeries
    from gwpy.timeseries import TimeSeries

    # t0 and dt are given as the floats the chunks carried, so they read back bit-exact; the
    # samples are this export's own array, not copied again.
    return TimeSeries(
        segment.samples(),
        copy=False,
        t0=segment.t0,
        dt=segment.dt,
        unit=UNIT,
        name=segment.channel,
        channel=segment.channel,
    )


def export_batch(
    store: ArchiveStore,
    ref: BatchRef,
    out: Path,
    *,
    pad: bool = False,
    conditioning: Conditioning | None = None,
    progress: Callable[[str], None] | None = None,
    workers: int | None = None,
) -> ExportSummary:
    """Write batch ``ref`` of ``store`` to the HDF5 file ``out``.

    Everything is read and checked before the file is written, and the file is written under a
    temporary name and renamed: on any error no output file is left.

    Parameters
    ----------
    store, ref
        The archive and the batch (see `glitchflow_archive.ArchiveStore.resolve`).
    out : Path
        The HDF5 file to write (replaced if it exists).
    pad : bool
        One series per channel with NaN in the gaps, instead of one series per segment.
    conditioning : Conditioning, optional
        Conditioned copies and Q-transform tiles to add.
    workers : int, optional
        Processes that read and parse a local batch (default 1; see
        `glitchflow_dataset.reader.read_batch`).

    Raises
    ------
    glitchflow_archive.ArchiveError, DatasetError
        With a one-line message naming the problem.
    """
    manifest = store.read_manifest(ref)
    chunks = read_batch(store, ref, manifest, workers=workers)
    if not chunks:
        raise DatasetError(f"batch {ref.name} holds no chunks")
    _check_channels(ref, manifest, chunks)
    joined = join_segments(chunks)
    summary = ExportSummary(
        Path(out),
        ref.batch,
        ref.name,
        len(chunks),
        manifest.nbytes,
        {ch: [(s.t0, s.end) for s in segs] for ch, segs in joined.items()},
    )
    del chunks
    # Imported once the batch is known good: a bad batch fails fast, without gwpy's import time.
    import h5py
    from gwpy.segments import DataQualityDict, DataQualityFlag

    flags = DataQualityDict()
    for channel, segments in joined.items():
        flags[channel] = DataQualityFlag(
            channel,
            known=[(segments[0].t0, segments[-1].end)],
            active=[(s.t0, s.end) for s in segments],
        )
        if pad:
            joined[channel] = [pad_gaps(segments)]

    with atomic_output(Path(out)) as tmp, h5py.File(tmp, "w") as h5f:
        for channel, segments in joined.items():
            for index, segment in enumerate(segments):
                series = _series(segment)
                path = f"{channel}/{index:04d}"
                series.write(h5f, path=path, format="hdf5", compression=None)
                if conditioning is not None:
                    _write_conditioned(h5f, path, series, conditioning, summary)
        flags.write(h5f, path=SEGMENTS_GROUP, format="hdf5")
        h5f.attrs.update(
            {
                "format": FORMAT,
                "batch": ref.batch,
                "archive": ref.name,
                "source": ref.location,
                "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "chunks": summary.chunks,
                "chunk_bytes": summary.chunk_bytes,
                "channels": orjson.dumps(sorted(joined)).decode(),
                "unit": UNIT,
                "pad_gaps": pad,
                "conditioning": conditioning.describe() if conditioning else "none",
                "conditioning_config": conditioning.as_json() if conditioning else "{}",
                "conditioning_skipped": orjson.dumps(summary.skipped).decode(),
                "manifest": orjson.dumps(
                    {k: v for k, v in manifest.doc.items() if k != "files"}
                ).decode(),
            }
        )
        if progress:
            progress(summary.line())
    return summary


def _check_channels(ref: BatchRef, manifest: Manifest, chunks: list[Chunk]) -> None:
    """Raise `DatasetError` when the manifest's per-channel chunk counts differ from the files'."""
    listed = manifest.doc.get("channels")
    if not isinstance(listed, dict):
        return  # an older manifest without the per-channel summary
    counts: dict[str, int] = {}
    for chunk in chunks:
        counts[chunk.channel] = counts.get(chunk.channel, 0) + 1
    for channel in sorted(set(listed) | set(counts)):
        info = listed.get(channel)
        said = info.get("n_itm") if isinstance(info, dict) else None
        if said != counts.get(channel, 0):
            raise DatasetError(
                f"batch {ref.name}: the manifest says channel {channel} has {said} chunks, "
                f"the files hold {counts.get(channel, 0)}"
            )


def _write_conditioned(
    h5f, path: str, series, conditioning: Conditioning, summary: ExportSummary
) -> None:
    """Conditioned copy and Q-transform of one segment; a segment too short is skipped, noted."""
    steps = conditioning.describe()
    if conditioning.time_domain:
        try:
            conditioned = condition_series(series, conditioning)
        except ValueError as exc:
            summary.skipped.append(f"{CONDITIONED_GROUP}/{path}: {exc}")
        else:
            target = f"{CONDITIONED_GROUP}/{path}"
            conditioned.write(h5f, path=target, format="hdf5", compression=None)
            # On the group: gwpy reads every dataset attribute back as a constructor argument.
            h5f[CONDITIONED_GROUP].attrs["conditioning"] = steps
    if conditioning.qtransform:
        try:
            tiles = q_tiles(series, conditioning.qtransform)
        except ValueError as exc:
            summary.skipped.append(f"{QTRANSFORM_GROUP}/{path}: {exc}")
        else:
            tiles.write(h5f, path=f"{QTRANSFORM_GROUP}/{path}", format="hdf5")
            h5f[QTRANSFORM_GROUP].attrs["conditioning"] = steps
