"""Cross-validation of a parser fine-tune's step count over the dev folds (occgui.training.parsing.crossval)."""
import json

import pytest

from occgui.training.parsing import crossval as CV


def _run(tmp_path, name, fold, scores, seed=0, every=100):
    d = tmp_path / name
    d.mkdir()
    lines = [{"event": "start", "step": 0, "real_fold": fold, "real_val_seed": seed, "real_val_every": every}]
    for step, iou in scores.items():
        lines.append({"step": step, "loss": 0.4})
        lines.append({"event": "dev_val", "step": step, "pooled_iou": iou, "found": 0.5})
    (d / "log.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{\"event\": \"dev_v")   # a cut line
    return d


def test_the_folds_mean_curve_chooses_the_best_common_step(tmp_path):
    runs = [_run(tmp_path, "a", "0/3", {100: 0.2, 200: 0.5, 300: 0.4}),
            _run(tmp_path, "b", "1/3", {100: 0.3, 200: 0.2, 300: 0.5, 400: 0.9}),
            _run(tmp_path, "c", "2/3", {100: 0.1, 200: 0.5, 300: 0.45})]
    c = CV.curve(reversed(runs))
    assert c.steps == (100, 200, 300) and c.folds == ("0/3", "1/3", "2/3")
    assert c.mean_iou == pytest.approx((0.2, 0.4, 0.45))
    assert c.best_step == 300                          # step 400 is not scored by every fold
    out = tmp_path / "cv.json"
    assert CV.main([str(r) for r in runs] + ["--json", str(out)]) == 0
    assert json.loads(out.read_text())["best_step"] == 300


def test_ties_go_to_the_earlier_step(tmp_path):
    runs = [_run(tmp_path, "a", "0/2", {100: 0.3, 200: 0.3}), _run(tmp_path, "b", "1/2", {100: 0.3, 200: 0.3})]
    assert CV.curve(runs).best_step == 100


@pytest.mark.parametrize("folds,seeds,match", [(("0/3", "1/3"), (0, 0), "one run for each fold"),
                                                (("0/2", "0/2"), (0, 0), "one run for each fold"),
                                                (("0/2", "1/2"), (0, 1), "one run for each fold")])
def test_an_incomplete_or_mixed_set_of_folds_is_refused(tmp_path, folds, seeds, match):
    runs = [_run(tmp_path, f"r{i}", f, {100: 0.3}, seed=s) for i, (f, s) in enumerate(zip(folds, seeds))]
    with pytest.raises(Exception, match=match):
        CV.curve(runs)


def test_runs_without_folds_or_scores_are_refused_with_one_line(tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "log.jsonl").write_text(json.dumps({"event": "start", "step": 0, "real_fold": None}) + "\n")
    assert CV.main([str(plain), str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().out.strip().count("\n") == 0
    with pytest.raises(Exception, match="no dev-val scores"):
        CV.curve([_run(tmp_path, "a", "0/2", {}), _run(tmp_path, "b", "1/2", {100: 0.2})])


def test_no_runs_is_refused(tmp_path):
    with pytest.raises(Exception, match="one run for each fold"):
        CV.curve([])
