"""``occgui run`` on many photos through an :class:`~occgui.batch.executor.Executor`.

Each worker builds one :class:`~occgui.pipeline.runner.Pipeline` (:class:`PhotoTask`) and runs many
photos; for each it returns the per-photo folder's files as bytes (:func:`occgui.export.folder_files`),
and this process writes them with :func:`occgui.export.write_folder` -- the same folder, the same
``report.json`` as a single ``occgui run`` of the photo (timings aside). Workers on a Ray cluster
therefore need no access to the output folder; with ``ship`` (the default for a remote cluster) they
need none to the photos either: each photo's bytes travel with it, read when it is dispatched.

Resuming: with ``skip_existing`` a photo whose folder already holds a complete ``report.json``
(readable, and every file it lists present) is not run again. Failures: one line per photo, in the
returned summary and in ``OUT/failures.txt`` (``PATH: error``; written as they happen, removed when a
run has none).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import OccguiError
from .executor import Executor

FAILURES_FILE = "failures.txt"


@dataclass(frozen=True)
class PhotoJob:
    """One photo of a batch: its path as the user gave it (the report's ``source``), the output
    folder's name, and (when shipped to a worker that may not see the path) the file's bytes."""

    path: str
    stem: str
    data: bytes | None = None
    where: str = ""             # the absolute path, read by workers that share this machine's files


@dataclass(frozen=True)
class RunSpec:
    """What every worker needs (picklable): the pipeline configuration and the one-photo edits."""

    config: Any                                   # occgui.pipeline.runner.PipelineConfig
    landmarks: np.ndarray | None = None           # --landmarks (photo px)
    corrections: Any = None                       # --corrections (occgui.corrections.Corrections)


class PhotoTask:
    """A worker's state: one Pipeline (its models load once), run on one photo per call."""

    def __init__(self, spec: RunSpec):
        from ..pipeline.runner import Pipeline

        self.spec = spec
        self.pipeline = Pipeline(spec.config)

    def __call__(self, job: PhotoJob) -> dict:
        if job.data is None:
            return self._run(job.where or job.path, job)
        with tempfile.TemporaryDirectory(prefix="occgui-photo-") as tmp:
            local = Path(tmp) / (Path(job.path).name or "photo")
            local.write_bytes(job.data)
            try:
                return self._run(str(local), job)
            except OccguiError as e:               # the message names the user's path, not ours
                raise type(e)(str(e).replace(str(local), job.path)) from None

    def _run(self, path: str, job: PhotoJob) -> dict:
        from ..export import folder_files

        t0 = time.perf_counter()
        spec, pipeline = self.spec, self.pipeline
        landmarks, alpha_edit = spec.landmarks, None
        if spec.corrections is not None:     # made for this photo? (checked before the long stages)
            spec.corrections.check_photo(pipeline.run(path, stop_after="load").image)
            landmarks, alpha_edit = spec.corrections.landmarks, spec.corrections.alpha_edit
        result = pipeline.run(path, landmarks=landmarks, alpha_edit=alpha_edit)
        if path != job.path:                 # shipped or made absolute: the report names the user's path
            result.image = replace(result.image, source=job.path)
        files = folder_files(result, total_seconds=time.perf_counter() - t0)
        return {"files": files, "device": pipeline.device, "seconds": time.perf_counter() - t0}


def report_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a finished per-photo result: a readable ``report.json`` whose listed
    files are all present."""
    try:
        report = json.loads((Path(folder) / "report.json").read_text(encoding="utf-8"))
        files = report["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(files, list) and all(isinstance(f, str) and (Path(folder) / f).is_file() for f in files)


@dataclass
class BatchSummary:
    photos: int = 0
    done: list[Path] = field(default_factory=list)            # folders written
    skipped: list[Path] = field(default_factory=list)         # photos with a complete folder already
    failures: list[tuple[str, str]] = field(default_factory=list)   # (photo, one-line error)
    seconds: float = 0.0
    device: str = ""


def _read_job(job: PhotoJob) -> PhotoJob:
    """The job with the photo's bytes (when the file can be read here; else the worker reports it)."""
    try:
        return replace(job, data=Path(job.path).read_bytes())
    except OSError:
        return job


def run_photos(photos: list[Path], outdir, spec: RunSpec, executor: Executor, *, skip_existing: bool = False,
               ship: bool = False, failures_file: bool = True, quiet: bool = True,
               on_done: Callable[[str, Path | None, str | None], None] | None = None) -> BatchSummary:
    """Reconstruct ``photos`` into ``outdir/<stem>/`` with ``executor`` (see the module docstring).

    ``ship``: send each photo's bytes with it (workers that do not share this machine's files).
    ``failures_file``: keep ``OUT/failures.txt`` (a batch; a single photo's error is only reported).
    ``on_done(photo, folder or None, error or None)`` after each photo. ``quiet``: no progress bar.
    """
    from ..export import safe_stem, write_folder

    outdir = Path(outdir)
    t0 = time.perf_counter()
    summary = BatchSummary(photos=len(photos))
    jobs: list[PhotoJob] = []
    clashes: list[tuple[str, str]] = []
    owner: dict[str, Path] = {}
    for p in photos:
        job = PhotoJob(str(p), p.stem, where=str(Path(p).absolute()))
        folder_name = safe_stem(job.stem)
        if folder_name in owner:           # a.jpg and a.png, or two person folders: one output folder
            clashes.append((job.path, f"its output folder {folder_name}/ is that of {owner[folder_name]} "
                                      "(rename one of them)"))
            continue
        owner[folder_name] = p
        if skip_existing and report_complete(outdir / folder_name):
            summary.skipped.append(p)
        else:
            jobs.append(job)
    fail_path = outdir / FAILURES_FILE
    fail_file = None

    def failed(path: str, error: str) -> None:
        nonlocal fail_file
        summary.failures.append((path, error))
        if failures_file and fail_file is None:
            outdir.mkdir(parents=True, exist_ok=True)
            fail_file = open(fail_path, "w", encoding="utf-8")
        if fail_file is not None:
            fail_file.write(f"{path}: {error}\n")
            fail_file.flush()

    from functools import partial

    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="photo", disable=quiet, file=sys.stderr)
    try:
        for path, error in clashes:
            failed(path, error)
        outcomes = executor.map_unordered(partial(PhotoTask, spec), jobs, prepare=_read_job if ship else None)
        for out in outcomes:
            job = out.item
            bar.update(1)
            bar.set_postfix_str(Path(job.path).name[:30])
            error = out.error
            folder = None
            if error is None:
                summary.device = out.value["device"]
                try:
                    folder = write_folder(out.value["files"], outdir, job.stem)
                    summary.done.append(folder)
                except OccguiError as e:
                    error = str(e)
            if error is not None:
                failed(job.path, error)
            if on_done is not None:
                on_done(job.path, folder, error)
    finally:
        bar.close()
        if fail_file is not None:
            fail_file.close()
    if failures_file and not summary.failures and fail_path.exists():
        os.remove(fail_path)                 # from an earlier run whose failures now succeeded
    summary.seconds = time.perf_counter() - t0
    return summary
