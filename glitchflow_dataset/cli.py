"""``glitchflow export`` and ``glitchflow train-ref`` (also installed as ``glitchflow-dataset``).

Usage::

    glitchflow export BATCH --out FILE.h5 [--archive-root DIR] [--pad-gaps] [--condition CFG]
                      [--workers N]
    glitchflow train-ref --dataset FILE.h5 --out DIR [--window S] [--top N] [--seed N]

``BATCH`` is a batch id (``7``), ``latest``, an archived batch name, or a batch folder path.
Exit status 0 on success, 2 with one line on stderr naming the problem. With the object store
set (``GLITCHFLOW_ARCHIVE_S3_*``, docs/CONFIGURATION.md), ``export`` reads a batch from the local
folder while it holds it, else from the bucket.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from glitchflow_archive import ArchiveError, ArchiveSettings, LocalArchive, open_archive
from glitchflow_core.settings import load_settings
from glitchflow_dataset.errors import DatasetError

DEFAULT_ARCHIVE_ROOT = Path("glitchflow-data/archive")
"""Where ``glitchflow up`` (data in ``./glitchflow-data``) has the buffer archive batches."""

ARCHIVE_ROOT_ENV = ("GLITCHFLOW_ARCHIVE_ROOT", "GLITCHFLOW_ARCHIVEROOT")


def default_archive_root() -> Path:
    """``$GLITCHFLOW_ARCHIVE_ROOT`` (or the buffer's ``$GLITCHFLOW_ARCHIVEROOT``), else
    ``$GLITCHFLOW_DATA_DIR/archive``, else ``glitchflow-data/archive``."""
    for name in ARCHIVE_ROOT_ENV:
        if os.environ.get(name):
            return Path(os.environ[name])
    if os.environ.get("GLITCHFLOW_DATA_DIR"):
        return Path(os.environ["GLITCHFLOW_DATA_DIR"]) / "archive"
    return DEFAULT_ARCHIVE_ROOT


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and status 2, as argparse does, no usage
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(prog: str = "glitchflow") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Turn archived batches into datasets and models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    export = sub.add_parser("export", help="write an archived batch as an HDF5 dataset (gwpy)")
    export.add_argument("batch", metavar="BATCH", help="batch id, 'latest', name or folder path")
    export.add_argument("--out", type=Path, required=True, metavar="FILE.h5")
    export.add_argument(
        "--archive-root",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of archived batches (default: $GLITCHFLOW_ARCHIVE_ROOT, "
        "$GLITCHFLOW_DATA_DIR/archive, or glitchflow-data/archive)",
    )
    export.add_argument(
        "--pad-gaps", action="store_true", help="one series per channel, NaN in the gaps"
    )
    export.add_argument(
        "--condition",
        type=Path,
        metavar="CONFIG",
        help="TOML or JSON: [resample] [bandpass] [whiten] [qtransform] (see docs/DATASET.md)",
    )
    export.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes that read and parse a local batch (default 1; more where cores are idle)",
    )
    export.add_argument("--quiet", action="store_true", help="print nothing on success")

    train = sub.add_parser("train-ref", help="train the reference glitch detector on a dataset")
    train.add_argument("--dataset", type=Path, required=True, metavar="FILE.h5")
    train.add_argument("--out", type=Path, required=True, metavar="DIR")
    train.add_argument("--window", type=float, default=0.5, help="window length, s")
    train.add_argument("--top", type=int, default=20, help="candidates in the report")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--quiet", action="store_true", help="print nothing on success")
    return parser


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or spec.startswith(".") or Path(spec).is_dir()


def run_export(args: argparse.Namespace) -> str:
    from glitchflow_dataset.condition import load_conditioning
    from glitchflow_dataset.export import export_batch

    conditioning = load_conditioning(args.condition) if args.condition else None
    if _looks_like_path(args.batch) and not args.batch.isdigit():
        store, ref = LocalArchive.open_folder(Path(args.batch))
    else:
        # With GLITCHFLOW_ARCHIVE_S3_* set, a batch no longer in the folder is read from the
        # bucket (the buffer removes local copies once their upload is verified).
        root = args.archive_root or default_archive_root()
        store = open_archive(root, args.archive_settings)
        ref = store.resolve(args.batch)
    summary = export_batch(
        store, ref, args.out, pad=args.pad_gaps, conditioning=conditioning, workers=args.workers
    )
    return summary.line()


def run_train(args: argparse.Namespace) -> str:
    from glitchflow_dataset.train import train_reference

    report = train_reference(
        args.dataset, args.out, window=args.window, top=args.top, seed=args.seed
    )
    return (
        f"trained on {report['windows']} windows of {args.dataset}: "
        f"{report['flagged']} flagged; model and report.json in {args.out}"
    )


def main(argv: Sequence[str] | None = None, prog: str = "glitchflow") -> int:
    """Run ``export`` or ``train-ref``; the exit status (0, or 2 with one line on stderr)."""
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, one line already printed)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command == "export":
        try:
            args.archive_settings = load_settings(ArchiveSettings, f"{prog} export")
        except SystemExit as exc:  # one line naming the variable is printed already
            return exc.code if isinstance(exc.code, int) else 2
    try:
        line = run_export(args) if args.command == "export" else run_train(args)
    except (ArchiveError, DatasetError) as exc:
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"{prog} {args.command}: error: {exc.filename or ''}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    if not args.quiet:
        print(line)
    return 0


def console() -> None:
    """Entry point of the ``glitchflow-dataset`` script."""
    sys.exit(main(prog="glitchflow-dataset"))


if __name__ == "__main__":
    console()
