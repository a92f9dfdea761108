"""Issue 16 point 5: the rule that makes FISN the default only when it wins, on constructed
numbers (each criterion failing on its own flips the decision), the decision record, and the
test that ties what ships (``default_backends.FISN_IS_DEFAULT``) to the committed record."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from occgui.errors import OccguiError
from occgui.eval import fisn_decision as F
from occgui.eval.fisn_decision import Evidence, FamilyIdentity, FeatureQuality, Verification, decide

WINNING = Evidence(
    identity=(FamilyIdentity("hand_over_eye", 0.277, 0.250, 40), FamilyIdentity("sunglasses", 0.436, 0.400, 40),
              FamilyIdentity("surgical_mask", 0.506, 0.480, 40)),
    verification=Verification(fisn=88.0, raw=79.5, occluded_crop=82.6, classical=76.5, classical_clean=97.3),
    features=FeatureQuality(hidden_iou_classical=0.60, hidden_iou_fisn=0.62, texture_l1_classical=20.0,
                            texture_l1_fisn=19.0, hidden_cases=120),
)


def _family(ev: Evidence, name: str, fisn: float) -> Evidence:
    return replace(ev, identity=tuple(replace(f, fisn=fisn) if f.family == name else f for f in ev.identity))


def test_winning_numbers_win():
    d = decide(WINNING)
    assert d.wins and d.failed == ()
    assert d.drop_half_closed is True                  # 88.0 >= 76.5 + 20.8 / 2
    assert "FISN wins" in d.summary()


@pytest.mark.parametrize("change, failed", [
    (lambda e: _family(e, "hand_over_eye", 0.300), "identity/hand_over_eye"),
    (lambda e: _family(e, "sunglasses", 0.436), "identity/sunglasses"),          # a tie is not lower
    (lambda e: _family(e, "surgical_mask", 0.600), "identity/surgical_mask"),
    (lambda e: replace(e, identity=e.identity[:2]), "identity/surgical_mask"),      # a family not measured
    (lambda e: replace(e, verification=replace(e.verification, raw=88.0)), "verify/raw"),
    (lambda e: replace(e, verification=replace(e.verification, occluded_crop=90.0)), "verify/occluded_crop"),
    (lambda e: replace(e, features=replace(e.features, hidden_iou_fisn=0.59)), "hidden_feature_iou"),
    (lambda e: replace(e, features=replace(e.features, texture_l1_fisn=20.5)), "texture_l1"),
])
def test_each_criterion_alone_flips_the_decision(change, failed):
    d = decide(change(WINNING))
    assert not d.wins and d.failed == (failed,)
    assert failed in d.summary() and "classical backend stays the default" in d.summary()


def test_no_worse_allows_ties_and_the_drop_target_does_not_decide():
    tie = replace(WINNING, features=replace(WINNING.features, hidden_iou_fisn=0.60, texture_l1_fisn=20.0))
    assert decide(tie).wins
    short = replace(WINNING, verification=replace(WINNING.verification, fisn=84.0))   # above both, < 86.9
    d = decide(short)
    assert d.wins and d.drop_half_closed is False and "not met" in d.notes[0]


def _reports(tmp_path, evidence: Evidence):
    """The four report files an evaluation would write, carrying ``evidence``'s numbers."""
    from occgui.eval.lfw import HELD_OUT_GROUP

    table = {}
    for f in evidence.identity:
        table[f.family] = {"n": f.cases, "identity_ours": f.classical, "identity_fisn": f.fisn,
                           "n_hidden_eyes": 40, "iou_eyes_ours": evidence.features.hidden_iou_classical,
                           "iou_eyes_fisn": evidence.features.hidden_iou_fisn,
                           "n_hidden_lips": 2, "iou_lips_ours": 0.9, "iou_lips_fisn": 0.0}   # too few cases
    deocc = {"protocol": {"synthesizer": "symmetric@3"}, "table": table}
    v = evidence.verification

    def acc(x):
        return {"accuracy": {"mean": x, "std": 0.0}}

    verify = {"settings": {"pairs_used": 600},
              "results": {"render_fisn/occluded": acc(v.fisn), "render_raw/occluded": acc(v.raw),
                          "photo/occluded": acc(v.occluded_crop), "render_full/occluded": acc(v.classical),
                          "render_full/clean": acc(v.classical_clean)}}

    def occl(l1, synth):
        return {"settings": {"backends": {"full": {"synthesize": synth}}},
                "by_identity_group": {HELD_OUT_GROUP: {"texture_l1_full": {"n": 30, "mean": l1}}}}

    paths = {}
    for name, rep in (("deocc", deocc), ("verify", verify),
                      ("tc", occl(evidence.features.texture_l1_classical, "symmetric@3")),
                      ("tf", occl(evidence.features.texture_l1_fisn, "fisn@0123456789"))):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(rep))
    return paths


def test_evidence_from_reports_and_the_record_round_trip(tmp_path):
    p = _reports(tmp_path, WINNING)
    ev = F.evidence_from_reports(p["deocc"], p["verify"], p["tc"], p["tf"])
    assert [f.family for f in ev.identity] == [f.family for f in WINNING.identity]
    assert ev.features.hidden_iou_fisn == pytest.approx(0.62) and ev.features.hidden_cases == 120
    assert ev.verification.fisn == 88.0 and ev.verification.pairs == 600
    assert decide(ev).wins

    ckpt = tmp_path / "fisn_generator.safetensors"
    ckpt.write_bytes(b"weights v1")
    record = tmp_path / "fisn_decision.json"
    assert F.write_record(record, ev, ckpt).wins
    rec = F.read_record(record)
    assert rec.wins and rec.evidence == ev and F.record_problems(rec, ckpt) == []

    ckpt.write_bytes(b"weights v2, retrained")                    # new weights: the record is stale
    assert any("re-run the evaluation" in s for s in F.record_problems(rec, ckpt))
    ckpt.write_bytes(b"weights v1")
    data = json.loads(record.read_text())
    data["evidence"]["verification"]["fisn"] = 70.0                # numbers edited, decision kept
    record.write_text(json.dumps(data))
    assert any("its numbers give wins=False" in s for s in F.record_problems(F.read_record(record), ckpt))


def test_report_mistakes_are_one_line_errors(tmp_path):
    p = _reports(tmp_path, WINNING)
    with pytest.raises(OccguiError, match="report not found"):
        F.evidence_from_reports(tmp_path / "nope.json", p["verify"], p["tc"], p["tf"])
    with pytest.raises(OccguiError, match="synthesize=fisn"):
        F.evidence_from_reports(p["deocc"], p["verify"], p["tc"], p["tc"])
    no_fisn = json.loads(p["verify"].read_text())
    del no_fisn["results"]["render_fisn/occluded"]
    with pytest.raises(OccguiError, match="--fisn"):
        F.evidence_from_reports(p["deocc"], no_fisn, p["tc"], p["tf"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(OccguiError, match="not an occgui FISN decision record"):
        F.read_record(bad)


def test_cli_prints_and_writes_the_decision(tmp_path, capsys):
    from occgui.cli import main

    p = _reports(tmp_path, replace(WINNING, features=replace(WINNING.features, texture_l1_fisn=25.0)))
    args = ["eval", "fisn-decision", "--deocclusion", str(p["deocc"]), "--verify", str(p["verify"]),
            "--texture-classical", str(p["tc"]), "--texture-fisn", str(p["tf"])]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "does not win (texture_l1 failed)" in out
    ckpt = tmp_path / "w.safetensors"
    ckpt.write_bytes(b"w")
    assert main(args + ["--checkpoint", str(ckpt), "-o", str(tmp_path / "rec.json")]) == 0
    assert F.read_record(tmp_path / "rec.json").wins is False


def test_default_synthesis_follows_the_decision_record():
    """What ships: ``fisn`` is the default ``synthesize`` backend only when the committed record
    (``checkpoints/fisn_decision.json``) says FISN won, its numbers say so under today's rule, and it
    measured the shipped weights. Retrained weights, an edited record or a flipped constant fail here."""
    from occgui.pipeline import backends as B
    from occgui.pipeline import default_backends as D
    from occgui.synthesis.fisn_backend import checkpoint_file

    default = B.resolve("synthesize", None)
    assert (default == "fisn") == D.FISN_IS_DEFAULT
    path = F.record_path()
    if not path.exists():
        assert default != "fisn", f"fisn is the default synthesis but there is no decision record at {path}"
        pytest.skip(f"no FISN decision record yet ({path}): write it with `occgui eval fisn-decision -o {path}`")
    rec = F.read_record(path)
    problems = F.record_problems(rec, checkpoint_file())
    assert not problems, f"{path}: " + "; ".join(problems)
    if default == "fisn":
        assert rec.wins, f"fisn is the default synthesis but {path} says it did not win"


def test_no_classical_drop_means_no_target():
    flat = replace(WINNING, verification=replace(WINNING.verification, classical=90.0, classical_clean=90.0))
    d = decide(flat)
    assert d.wins and d.drop_half_closed is None and "nothing to close" in d.notes[0]
