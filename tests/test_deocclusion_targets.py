"""Point 8 of the pipeline issue on the full measurement set (slow: about 5 minutes on 2 cores).

The issue's de-occlusion targets are defined on 40 photos per occluder family; this runs the
protocol of ``occgui.eval.deocclusion`` exactly as ``occgui eval deocclusion`` does (held-out
identities Q-S, seed 2024, 40 photos per family) and asserts that none is violated: identity
below the occluded photo's and Telea's for every family, every hidden feature's IoU >= 0.5, L1
at most 1.2 x Telea. The default test run checks a 10-photo subset instead
(``test_deocclusion_floors.py``). Run with ``pytest -m slow tests/test_deocclusion_targets.py``.
"""
from __future__ import annotations

import pytest

from occgui.eval import deocclusion as D

pytestmark = pytest.mark.slow


def test_every_target_met_on_the_40_photo_set(lfw_dir, occluders_dir):
    from occgui.pipeline import backends as B

    if "unet" not in B.available("parse"):
        pytest.skip("needs the trained parser (checkpoints/parsing_unet.onnx)")
    report = D.run(lfw_dir, occluders_dir, families=D.FAMILIES, per_family=D.DEFAULT_PER_FAMILY,
                   seed=D.DEFAULT_SEED)
    for fam in D.FAMILIES:
        assert report["table"][fam]["n"] == D.DEFAULT_PER_FAMILY
    assert report["violations"] == [], "\n" + D.format_table(report["table"])
