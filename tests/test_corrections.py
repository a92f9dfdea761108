"""Corrections (issue 13 points 5-6, Qt-free): the painted occluder, its cache keys in the runner,
and ``corrections.json`` (round trip, checks against the photo's crop, one-line errors)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from occgui import labels as L
from occgui.corrections import (
    AlphaEdit,
    Corrections,
    CorrectionsError,
    brush_mask,
    occluder_mask,
    parse_corrections,
    photo_to_crop,
    read_corrections,
    write_corrections,
)
from occgui.pipeline.runner import PAINTED_ALPHA_READERS, STAGES, Pipeline, PipelineConfig


@pytest.fixture(scope="module")
def pipeline_and_result(sample_photo):
    p = Pipeline(PipelineConfig(device="cpu"))
    return p, p.run(sample_photo)


def _edit(result, *, add_at=(60, 60), erase_all=False, radius=12):
    alpha = result.alpha.labels
    e = AlphaEdit.blank(result.image, result.crop)
    e = e.painted(alpha, brush_mask(e.size, [add_at, (add_at[0] + 30, add_at[1] + 5)], radius), erase=False)
    if erase_all:
        e = e.painted(alpha, np.ones_like(alpha, bool), erase=True)
    return e


def test_painted_alpha_readers_are_merge_synthesize_texture():
    from occgui.pipeline.backends import reads_of
    from occgui.pipeline.stages import painted_alpha_readers

    # the geometry stage may read M_alpha (the morphable fit does); the default MediaPipe mesh does not
    assert PAINTED_ALPHA_READERS == ("merge", "synthesize", "geometry", "texture")
    assert painted_alpha_readers(reads_of()) == ("merge", "synthesize", "texture")
    assert painted_alpha_readers(reads_of({"geometry": "morphable"})) == PAINTED_ALPHA_READERS


def test_brush_and_eraser_masks():
    m = brush_mask(64, [(10, 10)], 4)
    assert m[10, 10] and m[10, 13] and not m[10, 16] and 40 < m.sum() < 65        # a disc of radius 4
    line = brush_mask(64, [(10, 30), (50, 30)], 3)
    assert line[30, 10:51].all() and line[27:34, 30].all() and not line[36, 30]
    alpha = np.full((64, 64), L.SKIN, np.uint8)
    alpha[:, 40:] = L.OCCLUDER
    e = AlphaEdit(np.zeros((64, 64), bool), np.zeros((64, 64), bool), np.eye(2, 3), (64, 64))
    assert e.empty and e.digest() == ""
    e1 = e.painted(alpha, m, erase=False)
    assert e1.added.sum() == m.sum() and not e1.erased.any() and e1.digest()
    e2 = e1.painted(alpha, brush_mask(64, [(45, 10)], 3), erase=True)            # erase parser occluder
    out = e2.apply(alpha)
    assert out[10, 10] == L.OCCLUDER and out[10, 45] == L.SKIN and out[50, 50] == L.OCCLUDER
    e3 = e2.painted(alpha, m, erase=True)                                       # erasing the added paint
    assert not e3.added.any() and e3.erased.any()
    assert np.array_equal(occluder_mask(alpha, e3), (alpha == L.OCCLUDER) & ~e3.erased)
    assert alpha[10, 45] == L.OCCLUDER, "apply never modifies M_alpha"


def test_paint_recomputes_only_merge_onwards_and_enters_the_cache_keys(pipeline_and_result, sample_photo):
    p, r1 = pipeline_and_result
    before = dict(p.run_counts)
    edit = _edit(r1)
    r2 = p.run(sample_photo, alpha_edit=edit)
    for s in ("load", "detect", "parse", "landmarks", "landmark_map", "geometry"):
        assert p.run_counts[s] == before[s], f"{s} was recomputed by a paint edit"
    for s in ("merge", "synthesize", "texture"):
        assert p.run_counts[s] == before[s] + 1, f"{s} was not recomputed"
    assert r2.alpha is r1.alpha, "the parser's map is kept (the landmark stage reads it)"
    painted = r2.effective_alpha().labels
    assert (painted == L.OCCLUDER).sum() > (r1.alpha.labels == L.OCCLUDER).sum()
    assert r2.synthesis.filled.sum() > r1.synthesis.filled.sum(), "the painted occluder is re-synthesized"
    r3 = p.run(sample_photo, alpha_edit=edit)                     # same paint: every stage cached
    assert r3.cached == list(STAGES)
    r4 = p.run(sample_photo)                                      # paint removed: merge onwards again
    assert p.run_counts["merge"] == before["merge"] + 2 and r4.alpha_painted is None
    assert p.run_counts["landmarks"] == before["landmarks"]


def test_erasing_every_occluder_pixel(pipeline_and_result, sample_photo):
    p, r1 = pipeline_and_result
    assert (r1.alpha.labels == L.OCCLUDER).any(), "the sample photo is occluded"
    alpha = r1.alpha.labels
    edit = AlphaEdit.blank(r1.image, r1.crop).painted(alpha, np.ones_like(alpha, bool), erase=True)
    r = p.run(sample_photo, alpha_edit=edit)
    assert not (r.effective_alpha().labels == L.OCCLUDER).any() and not r.synthesis.filled.any()


def test_corrections_file_round_trip(pipeline_and_result, tmp_path):
    _p, r = pipeline_and_result
    pts = r.landmarks_in_photo() + 1.5
    edit = _edit(r, erase_all=True)
    c = Corrections(pts, edit, str(r.image.source), tuple(r.image.photo_size), 0)
    path = write_corrections(tmp_path / "corrections.json", c)
    back = read_corrections(path)
    assert np.allclose(back.landmarks, pts, atol=1e-3)
    assert np.array_equal(back.alpha_edit.added, edit.added) and np.array_equal(back.alpha_edit.erased, edit.erased)
    assert back.alpha_edit.digest() == edit.digest()
    assert np.allclose(back.alpha_edit.photo_to_crop, photo_to_crop(r.image, r.crop), atol=1e-6)
    back.check_fits(r.image, r.crop)
    doc = json.loads(path.read_text())
    assert doc["occluder_paint"]["added_px"] == int(edit.added.sum())
    assert len(path.read_bytes()) < 20_000, "the masks are stored compactly (1-bit PNG)"


def test_mismatched_corrections_are_refused(pipeline_and_result):
    _p, r = pipeline_and_result
    edit = _edit(r)
    shifted = AlphaEdit(edit.added, edit.erased, edit.photo_to_crop + [[0, 0, 5.0], [0, 0, 0]], edit.photo_size)
    with pytest.raises(CorrectionsError, match="another face crop"):
        shifted.check_fits(r.image, r.crop)
    other = AlphaEdit(edit.added, edit.erased, edit.photo_to_crop, (10, 20))
    with pytest.raises(CorrectionsError, match="10x20 photo"):
        other.check_fits(r.image, r.crop)
    with pytest.raises(CorrectionsError, match="photo"):
        Corrections(r.landmarks_in_photo(), None, "", (99, 99)).check_photo(r.image)


@pytest.mark.parametrize("text,message", [
    ("{not json", "not a JSON corrections file"),
    ("[1, 2]", "not an occgui corrections file"),
    ('{"format": "occgui-corrections", "version": 7}', "version 7"),
    ('{"format": "occgui-corrections", "version": 1, "landmarks": [[1, 2]]}', "68"),
    ('{"format": "occgui-corrections", "version": 1, "landmarks": null}', "no correction"),
    ('{"format": "occgui-corrections", "version": 1, "photo_size": [9, 9], "occluder_paint": {"crop_size": 256, '
     '"photo_to_crop": [[1, 0, 0], [0, 1, 0]], "added": "xx", "erased": ""}}', "not a base64 PNG"),
    ('{"format": "occgui-corrections", "version": 1, "occluder_paint": {"crop_size": 256}}', "photo_to_crop"),
])
def test_malformed_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(CorrectionsError) as e:
        read_corrections(path)
    assert message in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith("c.json")
    with pytest.raises(CorrectionsError, match="not found"):
        read_corrections(tmp_path / "missing.json")


def test_a_landmarks_json_reads_as_landmarks_only_corrections():
    pts = np.arange(136, dtype=float).reshape(68, 2)
    c = parse_corrections({"points": pts.tolist(), "photo_size": [640, 480]})
    assert np.array_equal(c.landmarks, pts) and c.alpha_edit is None and c.photo_size == (640, 480)
