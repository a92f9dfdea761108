"""The Qt-free document model: staleness is exact, run arguments follow the edits."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from occgui.gui.document import LANDMARK_DEPENDENT, FaceDocument
from occgui.pipeline.runner import STAGES, downstream_of


class _Image:
    scale = 0.5

    def working_to_photo(self, p):
        return np.asarray(p, dtype=np.float64) / self.scale


class _Crop:
    def crop_to_working(self, p):
        return np.asarray(p, dtype=np.float64) + 10.0


def _doc_with_results():
    doc = FaceDocument()
    doc.open("/tmp/photo.png")
    pts = np.arange(136, dtype=np.float64).reshape(68, 2)
    doc.set_result("load", _Image(), cached=False, seconds=0.1, used_landmarks=None)
    doc.set_result("detect", _Crop(), cached=False, seconds=0.1, used_landmarks=None)
    lm = SimpleNamespace(points=pts, detected_points=pts)
    doc.set_result("landmarks", lm, cached=False, seconds=0.1, used_landmarks=None)
    for s in STAGES:
        if s not in ("load", "detect", "landmarks"):
            doc.set_result(s, object(), cached=False, seconds=0.1, used_landmarks=None)
    return doc


def test_landmark_dependent_stages_are_those_downstream_of_the_landmarks():
    assert LANDMARK_DEPENDENT == downstream_of("landmarks")
    assert "parse" not in LANDMARK_DEPENDENT and "detect" not in LANDMARK_DEPENDENT
    assert {"landmark_map", "merge", "synthesize", "geometry", "texture"} == set(LANDMARK_DEPENDENT)


def test_landmarks_are_converted_to_photo_pixels():
    doc = _doc_with_results()
    expected = (np.arange(136, dtype=np.float64).reshape(68, 2) + 10.0) / 0.5
    assert np.allclose(doc.detected, expected) and np.allclose(doc.landmarks, expected)
    assert not doc.edited and doc.run_landmarks() is None and doc.complete


def test_an_edit_makes_exactly_the_dependent_stages_stale_and_undo_clears_it():
    doc = _doc_with_results()
    original = doc.landmarks[8].copy()
    doc.move_landmark(8, original + 5.0)
    assert doc.edited and doc.stale_stages() == frozenset(LANDMARK_DEPENDENT)
    assert np.allclose(doc.run_landmarks()[8], original + 5.0)
    doc.move_landmark(8, original)
    assert not doc.edited and not doc.is_stale


def test_results_computed_from_the_edit_are_fresh():
    doc = _doc_with_results()
    doc.move_landmark(3, doc.landmarks[3] + 2.0)
    used = doc.run_landmarks()
    for s in LANDMARK_DEPENDENT[:2]:
        doc.set_result(s, object(), cached=False, seconds=0.0, used_landmarks=used)
    assert doc.stale_stages() == frozenset(LANDMARK_DEPENDENT[2:])
    for s in LANDMARK_DEPENDENT[2:]:
        doc.set_result(s, object(), cached=False, seconds=0.0, used_landmarks=used)
    assert not doc.is_stale and doc.complete


def test_open_resets_everything():
    doc = _doc_with_results()
    doc.move_landmark(0, (1.0, 2.0))
    doc.open("/tmp/other.png")
    assert doc.landmarks is None and not doc.results and all(v == "pending" for v in doc.states.values())


def test_paint_makes_exactly_merge_onwards_stale_and_undo_clears_it():
    from occgui.corrections import AlphaEdit, edit_digest
    from occgui.gui.document import PAINT_DEPENDENT

    doc = _doc_with_results()
    size = 16
    alpha = np.zeros((size, size), np.uint8)
    doc.results["parse"] = SimpleNamespace(labels=alpha)
    assert PAINT_DEPENDENT == ("merge", "synthesize", "texture")
    assert not doc.has_corrections and doc.run_alpha_edit() is None
    blank = AlphaEdit(np.zeros((size, size), bool), np.zeros((size, size), bool), np.eye(2, 3), (size, size))
    mask = np.zeros((size, size), bool)
    mask[4:8, 4:8] = True
    doc.set_alpha_edit(blank.painted(alpha, mask, erase=False))
    assert doc.painted and doc.has_corrections and not doc.edited
    assert doc.stale_stages() == frozenset(PAINT_DEPENDENT)
    assert doc.occluder_mask().sum() == 16
    used = edit_digest(doc.run_alpha_edit())
    for s in PAINT_DEPENDENT:
        doc.set_result(s, object(), cached=False, seconds=0.0, used_landmarks=None, used_edit=used)
    assert not doc.is_stale
    doc.set_alpha_edit(blank)                       # an empty edit is no edit
    assert doc.alpha_edit is None and doc.stale_stages() == frozenset(PAINT_DEPENDENT)


def test_current_results_leave_out_the_stale_ones_and_other_landmarks():
    doc = _doc_with_results()
    assert set(doc.current_results()) == set(STAGES)
    doc.move_landmark(5, (1.0, 2.0))
    cur = doc.current_results()
    assert set(cur) == set(STAGES) - set(LANDMARK_DEPENDENT) - {"landmarks"}
    doc.move_landmark(5, doc.detected[5])                # back to the points the results used
    assert set(doc.current_results()) == set(STAGES)


def test_timings_after_reuse_cancel_and_failure():
    doc = _doc_with_results()
    value = doc.results["parse"]
    doc.set_result("parse", value, cached=True, seconds=0.0, used_landmarks=None)
    assert doc.states["parse"] == "cached" and doc.seconds["parse"] == 0.1, "a reused result keeps its compute time"
    doc.set_result("merge", object(), cached=True, seconds=0.0, used_landmarks=None)
    assert doc.seconds["merge"] is None, "a reused result whose computation was not seen has no time"
    doc.mark_running("geometry", now=10.0)
    assert doc.end_run("cancelled", now=12.5) == "geometry"
    assert doc.states["geometry"] == "cancelled" and doc.elapsed["geometry"] == 2.5
    doc.mark_running("texture", now=1.0)
    doc.end_run("failed", now=1.25)
    assert doc.states["texture"] == "failed" and doc.elapsed["texture"] == 0.25


@pytest.fixture(scope="module")
def ran_result(sample_photo):
    from occgui.pipeline.runner import Pipeline

    return Pipeline().run(str(sample_photo))


def test_export_result_is_the_last_run_or_the_results_on_screen(ran_result):
    from occgui.gui.document import FaceDocument

    result = ran_result
    doc = FaceDocument()
    doc.open(result.image.source)
    assert doc.export_result() is None, "nothing to export before a run"
    from occgui.pipeline.runner import STAGE_TABLE

    for spec in STAGE_TABLE:
        doc.set_result(spec.name, getattr(result, spec.field), cached=False, seconds=0.01, used_landmarks=None)
    built = doc.export_result("cpu")
    assert built is not None and built is not result
    assert all(built.get(s) is result.get(s) for s in STAGES)
    assert built.warnings == list(result.warnings) and built.cached == []
    doc.finish_run(result, {})
    assert doc.export_result("cpu") is result, "the last run's own result when the window shows exactly it"
    doc.move_landmark(8, doc.landmarks[8] + (0.0, 5.0))
    assert doc.export_result("cpu") is None, "out-of-date results are not exported as they are"


def test_with_the_morphable_geometry_a_paint_makes_the_geometry_stale_too():
    """The morphable fit reads M_alpha as painted: after a paint its mesh is stale (and a re-run
    recomputes it); with MediaPipe's mesh it is not. The choice survives opening another photo."""
    from occgui.corrections import AlphaEdit, edit_digest

    doc = _doc_with_results()
    size = 16
    alpha = np.zeros((size, size), np.uint8)
    doc.results["parse"] = SimpleNamespace(labels=alpha)
    blank = AlphaEdit(np.zeros((size, size), bool), np.zeros((size, size), bool), np.eye(2, 3), (size, size))
    mask = np.zeros((size, size), bool)
    mask[2:6, 2:6] = True
    doc.set_geometry("morphable")
    assert "geometry" in doc.paint_dependent
    doc.set_alpha_edit(blank.painted(alpha, mask, erase=False))
    assert "geometry" in doc.stale_stages()
    used = edit_digest(doc.run_alpha_edit())
    for s in doc.paint_dependent:
        doc.set_result(s, object(), cached=False, seconds=0.0, used_landmarks=None, used_edit=used)
    assert not doc.is_stale
    doc.set_geometry(None)
    assert "geometry" not in doc.paint_dependent
    doc.set_geometry("morphable")
    doc.open("other.jpg")
    assert doc.geometry == "morphable" and "geometry" in doc.paint_dependent
