"""Batches (occgui.batch): the executor's logic on fake tasks, ``occgui run FOLDER`` resumable with
``--skip-existing`` and a ``failures.txt``, and -- on LFW photos from ../shared/data -- identical
per-photo folders from one process, ``--workers 2`` and a local two-actor Ray instance."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from occgui.batch import executor as E
from occgui.batch.photos import FAILURES_FILE, report_complete
from occgui.cli import main
from occgui.errors import OccguiError

LFW_PHOTOS = ("AJ_Cook/AJ_Cook_0001.jpg", "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
              "Aaron_Peirsol/Aaron_Peirsol_0001.jpg")


# ----------------------------------------------------------------------------- fake tasks
class _Square:
    """A fake task: counts how often its factory ran (once per worker) and fails on bad items."""

    builds = 0

    def __init__(self, tag: str = ""):
        type(self).builds += 1
        self.tag = tag
        self.pid = os.getpid()

    def __call__(self, x):
        if x == "bad":
            raise OccguiError("bad item\nsecond line is dropped")
        if x == "bug":
            raise KeyError("boom")
        return (x * x, self.pid, self.tag)


def _broken_factory():
    raise OccguiError("checkpoint missing")


def test_serial_executor_builds_once_and_reports_one_line_errors():
    _Square.builds = 0
    outs = list(E.SerialExecutor().map_unordered(_Square, [1, "bad", 3, "bug"]))
    assert _Square.builds == 1
    assert [o.index for o in outs] == [0, 1, 2, 3]
    assert outs[0].value[0] == 1 and outs[2].value[0] == 9 and outs[0].ok
    assert outs[1].error == "bad item" and not outs[1].ok
    assert outs[3].error == "internal error (KeyError: 'boom')"
    local = _Square("local")
    assert [o.value[2] for o in E.SerialExecutor().map_unordered(_broken_factory, [2], local=local)] == ["local"]
    prepared = list(E.SerialExecutor().map_unordered(_Square, [2], prepare=lambda x: x + 1))
    assert prepared[0].item == 2 and prepared[0].value[0] == 9          # the item as given, the value of 3


def test_serial_executor_stops_when_the_worker_cannot_start():
    with pytest.raises(OccguiError, match="checkpoint missing"):
        list(E.SerialExecutor().map_unordered(_broken_factory, [1]))


def test_make_executor_choices_and_errors():
    assert isinstance(E.make_executor(None, None), E.SerialExecutor)
    assert isinstance(E.make_executor(1, None), E.SerialExecutor)
    ex = E.make_executor(3, None)
    assert isinstance(ex, E.ProcessExecutor) and ex.workers == 3 and ex.threads >= 1
    with pytest.raises(OccguiError, match="--workers must be at least 1"):
        E.make_executor(0, None)


def test_gpus_per_actor():
    assert E.gpus_per_actor(0, 4, "auto") == 0
    assert E.gpus_per_actor(8, 4, "cpu") == 0
    assert E.gpus_per_actor(8, 4, "cuda") == 1.0
    assert E.gpus_per_actor(1, 4, "auto") == 0.25


def test_process_executor_runs_items_in_two_processes():
    ex = E.ProcessExecutor(2)
    items = list(range(6)) + ["bad"]
    outs = {o.index: o for o in ex.map_unordered(_Square, items)}
    assert sorted(outs) == list(range(7))
    assert [outs[i].value[0] for i in range(6)] == [i * i for i in range(6)]
    assert outs[6].error == "bad item"
    pids = {o.value[1] for o in outs.values() if o.ok}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    with pytest.raises(E.WorkerStartError, match="could not start: checkpoint missing"):
        list(E.ProcessExecutor(2).map_unordered(_broken_factory, [1, 2]))


def test_ray_missing_is_one_line_error(monkeypatch, tmp_path, capsys, sample_photo):
    monkeypatch.setitem(sys.modules, "ray", None)            # `import ray` raises ImportError
    assert main(["run", str(sample_photo), "-o", str(tmp_path), "--ray", "auto", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "occgui: error: --ray needs Ray, which is not installed; install the cluster extra: " \
                  "pip install 'occgui[cluster]'"


def test_cli_parser_imports_neither_ray_nor_torch():
    import subprocess

    code = ("import sys; from occgui.cli import build_parser; "
            "a = build_parser().parse_args(['run', 'x', '-o', 'y', '--ray', 'auto', '--workers', '2']); "
            "print(a.ray, a.workers, 'ray' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["auto", "2", "False", "False"]


def test_report_complete(tmp_path):
    assert not report_complete(tmp_path)
    (tmp_path / "report.json").write_text('{"files": ["a.png", "report.json"]}')
    assert not report_complete(tmp_path)
    (tmp_path / "a.png").write_bytes(b"x")
    assert report_complete(tmp_path)
    (tmp_path / "report.json").write_text('{"files": ["a.png", "rep')        # cut short
    assert not report_complete(tmp_path)


# ----------------------------------------------------------------------------- occgui run FOLDER
def _folder_of(tmp_path: Path, photos: list[Path]) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for p in photos:
        shutil.copy(p, d / p.name)
    (d / "broken.jpg").write_bytes(b"not a jpeg")
    return d


def test_folder_run_resumes_and_lists_failures(tmp_path, sample_photo, capsys):
    """One process: a broken file lands in failures.txt and the others finish; --skip-existing skips
    the finished photo (its folder is not rewritten) and retries the failed one."""
    d = _folder_of(tmp_path, [sample_photo])
    out = tmp_path / "out"
    assert main(["run", str(d), "-o", str(out), "-q"]) == 1
    folder = out / sample_photo.stem
    assert report_complete(folder)
    assert (out / FAILURES_FILE).read_text() == f"{d / 'broken.jpg'}: not an image (unrecognised file format)\n"
    stamp = (folder / "report.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["run", str(d), "-o", str(out), "--skip-existing", "-q"]) == 1
    assert "1/2 photos reconstructed" in capsys.readouterr().out   # skipped, counted as done
    assert (folder / "report.json").stat().st_mtime_ns == stamp
    assert (out / FAILURES_FILE).is_file()
    (d / "broken.jpg").unlink()
    shutil.copy(sample_photo, d / "second.png")
    assert main(["run", str(d), "-o", str(out), "--skip-existing", "-q"]) == 0
    assert "2/2 photos reconstructed" in capsys.readouterr().out and report_complete(out / "second")
    assert (folder / "report.json").stat().st_mtime_ns == stamp
    assert not (out / FAILURES_FILE).exists()                 # the run had no failure


def _without_timings(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("total_seconds", "seconds")}


def _assert_same_folders(a: Path, b: Path, stems: list[str]) -> None:
    for stem in stems:
        fa, fb = a / stem, b / stem
        names = sorted(p.name for p in fa.iterdir())
        assert names == sorted(p.name for p in fb.iterdir()), stem
        ra, rb = (json.loads((f / "report.json").read_text()) for f in (fa, fb))
        assert _without_timings(ra) == _without_timings(rb), stem
        assert set(ra["seconds"]) == set(rb["seconds"])
        for name in names:
            if name != "report.json":
                assert (fa / name).read_bytes() == (fb / name).read_bytes(), f"{stem}/{name}"


@pytest.fixture(scope="module")
def lfw_batch(tmp_path_factory, request):
    """Three LFW photos and a broken file, and each photo's folder from its own single `occgui run`."""
    shared = request.getfixturevalue("shared_data")
    lfw = shared / "faces" / "lfw" / "lfw-deepfunneled"
    photos = [lfw / p for p in LFW_PHOTOS]
    if not all(p.is_file() for p in photos):
        pytest.skip("the LFW photos of this test are absent from the shared data")
    tmp = tmp_path_factory.mktemp("batch")
    d = _folder_of(tmp, photos)
    single = tmp / "single"
    for p in photos:
        assert main(["run", str(d / p.name), "-o", str(single), "-q", "--device", "cpu"]) == 0
    return d, single, [p.stem for p in photos]


def test_two_local_workers_match_single_runs(lfw_batch, tmp_path):
    d, single, stems = lfw_batch
    out = tmp_path / "out"
    assert main(["run", str(d), "-o", str(out), "--workers", "2", "-q", "--device", "cpu"]) == 1
    _assert_same_folders(single, out, stems)
    assert (out / FAILURES_FILE).read_text().splitlines() == [f"{d / 'broken.jpg'}: not an image (unrecognised "
                                                              "file format)"]


@pytest.mark.slow
def test_local_ray_two_actors_match_single_runs(lfw_batch, tmp_path):
    """A private Ray instance (loopback only) with two model-holding actors; the photos' bytes are
    shipped to the actors as to a remote cluster. Same folders; --skip-existing skips."""
    pytest.importorskip("ray", reason="needs the cluster extra (pip install 'occgui[cluster]')")
    import ray

    from occgui.batch.photos import RunSpec, run_photos
    from occgui.cli import collect_photos
    from occgui.pipeline.runner import PipelineConfig

    d, single, stems = lfw_batch
    out = tmp_path / "out"
    photos = collect_photos([str(d)])
    spec = RunSpec(PipelineConfig(device="cpu"))
    with E.RayExecutor(E.LOCAL_RAY, 2, device="cpu") as ex:
        assert ray.util.get_node_ip_address() == "127.0.0.1"
        assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
        assert ex.workers == 2 and ex.num_gpus == 0
        summary = run_photos(photos, out, spec, ex, ship=True)
        assert len(summary.done) == 3 and [p for p, _ in summary.failures] == [str(d / "broken.jpg")]
        _assert_same_folders(single, out, stems)
        again = run_photos(photos, out, spec, ex, skip_existing=True, ship=True)
        assert sorted(p.stem for p in again.skipped) == sorted(stems) and not again.done
        assert len(again.failures) == 1 and (out / FAILURES_FILE).is_file()
    assert not ray.is_initialized()


@pytest.mark.slow
def test_cli_ray_local(lfw_batch, tmp_path):
    pytest.importorskip("ray", reason="needs the cluster extra (pip install 'occgui[cluster]')")
    d, single, stems = lfw_batch
    out = tmp_path / "out"
    assert main(["run", str(d), "-o", str(out), "--ray", "local", "--workers", "2", "-q", "--device", "cpu"]) == 1
    _assert_same_folders(single, out, stems)


def test_photos_sharing_an_output_folder_are_reported(tmp_path, capsys):
    d = tmp_path / "in"
    (d / "b").mkdir(parents=True)
    (d / "a.jpg").write_bytes(b"not a jpeg")
    (d / "b" / "a.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert main(["run", str(d), "-o", str(out), "-q"]) == 1
    assert sorted((out / FAILURES_FILE).read_text().splitlines()) == [
        f"{d / 'a.jpg'}: not an image (unrecognised file format)",
        f"{d / 'b' / 'a.png'}: its output folder a/ is that of {d / 'a.jpg'} (rename one of them)"]
    assert "0/2 photos reconstructed" in capsys.readouterr().out


def _measure(item):
    if item == "bad":
        raise ValueError("cannot measure")
    return {"square": item * item}, {}


def _measure_factory():
    return _measure


@pytest.mark.parametrize("workers", [1, 2])
def test_eval_fill_cache_through_the_executor(tmp_path, capsys, workers):
    """occgui eval's item loop: cached items are not measured again, records come back to this process
    and are cached there, an item that raises is left out and named on stderr."""
    from occgui.eval import harness as H

    cache = H.ItemCache(tmp_path, H.fingerprint({"test": 1}))
    cache.save("item-1", {"square": -1})                        # cached earlier: kept, not re-measured
    seen = []

    def local(item):
        seen.append(item)
        return _measure(item)

    done = H.fill_cache([1, 2, 3, "bad"], cache, local, name_of=lambda i: f"item-{i}", desc="test", quiet=True,
                        factory=_measure_factory, executor=E.make_executor(workers))
    assert done["photos"] == 4 and done["measured"] == 2 and done["failed"] == 1
    assert [cache.load(f"item-{i}") for i in (1, 2, 3)] == [{"square": -1}, {"square": 4}, {"square": 9}]
    assert cache.load("item-bad") is None
    assert "test: not measured: item-bad: internal error (ValueError: cannot measure)" in capsys.readouterr().err
    assert seen == ([2, 3, "bad"] if workers == 1 else [])       # serial: this process's own measure
