"""Carry `occgui eval verify` results over a change of the parse stage, for the photos it does not change.

A verify record is a function of the photo, the seeded occluder and the stage backends. When only the
parse stage changed (a setting such as ``parse.hand_evidence``), a photo whose M_alpha is the same under
the old and the new parse -- for its clean crop and for its occluded crop -- gets the same record bit for
bit, since every later stage reads the same inputs. This tool re-derives, for each photo of an earlier
run, the two crops its record came from (the clean photo's, and the occluded photo's: the same seeded
occluder, checked against the record), parses both with the old and the new parse settings, and copies
the record under the new run's fingerprint where both maps are identical. The other photos (and failed
or sample photos) are left for ``occgui eval verify`` to measure. ``--check N`` re-measures N carried
photos in full and compares their features with the carried ones.

    python tools/carry_verify_cache.py --faces LFW --pairs pairs.txt --out OUT \\
        --from-option parse.hand_evidence=false [--from-run KEY] [--option ...] [--shard 0/2] [--check 20]

``--from-option`` gives the parse settings of the earlier run as ``--option`` items, ``--option`` the new
run's (both default to none: the defaults); the two runs may differ in the parse stage only. OUT is the
output folder of the earlier run (its ``cache/verify``). ``--from-run`` names the earlier run by its
fingerprint (its ``settings.KEY.json``), needed when a default has changed since it was made: its
settings then read differently from the ``--from-option`` ones, which add the changed setting, but its
parse backend ids must still name the same parser (``name@version``, the settings digest aside).
``--from-forehead1``: the earlier run grew the forehead's hair from every occluder part (parse id
``+forehead1``, before :func:`occgui.parsing.forehead.seeds`); its maps are re-derived so. Both runs'
maps come from the whole parse stage (with the wider view the hand evidence reads), as the runs made
them; the tool's earlier form parsed the crop alone, so a record it carried into a run with
``parse.hand_context`` on may be wrong where the wider view adds a hand: ``--recheck-wider-view``
leaves such photos (where the earlier run's map differs from its crop-alone map) to be measured anew.
Afterwards run ``occgui eval verify`` with the same ``--faces / --pairs / --option / -o`` (it measures
what is left and writes the report). A development tool, not part of the product.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np


def _without_parse(settings: dict) -> dict:
    out = json.loads(json.dumps(settings))
    for ids in out["backends"].values():
        ids.pop("parse", None)
    out.get("backend_settings", {}).pop("parse", None)
    if not out.get("backend_settings", True):
        out.pop("backend_settings")
    return out


def _parser_id(backend_id: str) -> str:
    """``name@version`` of a backend id, without its ``+s<digest>`` of non-default settings."""
    return re.sub(r"\+s[0-9a-f]+$", "", backend_id)


def main(argv=None) -> int:
    from occgui.eval import harness as H
    from occgui.eval import verify as V
    from occgui.eval.lfw import read_pairs, relative_name
    from occgui.parsing import forehead
    from occgui.pipeline import stages
    from occgui.pipeline.backends import parse_settings
    from occgui.training.occlusion.occluders import composite, sample_eval_family

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=Path, required=True)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--occluders", type=Path, default=Path("../shared/data/occluders"))
    ap.add_argument("--option", action="append", default=[], help="the new run's STAGE.SETTING=VALUE")
    ap.add_argument("--from-option", action="append", default=[], help="the earlier run's STAGE.SETTING=VALUE")
    ap.add_argument("--from-run", metavar="KEY", help="the earlier run's fingerprint (default: that of --from-option)")
    ap.add_argument("--from-forehead1", action="store_true",
                    help="the earlier run grew the forehead from every occluder part (parse id +forehead1)")
    ap.add_argument("--recheck-wider-view", action="store_true",
                    help="measure anew the photos whose map the wider view's hands change (records the "
                         "tool's earlier form carried there may be wrong)")
    ap.add_argument("--shard", default="0/1", help="I/N: this process takes every N-th photo from the I-th")
    ap.add_argument("--check", type=int, default=0, help="re-measure this many carried photos in full")
    a = ap.parse_args(argv)
    shard, shards = (int(x) for x in a.shard.split("/"))

    def run_settings(options):
        s = V.VerifySettings(faces=a.faces, pairs=a.pairs, occluders=a.occluders, out=a.out, quiet=True,
                             backend_settings=parse_settings(options))
        return s, V._run_settings(s)

    s, (settings, variants, identity, library, families) = run_settings(a.option)
    _, (old_settings, old_variants, *_) = run_settings(a.from_option)
    folder = a.out / "cache" / "verify"
    old_key = a.from_run or H.fingerprint(old_settings)
    recorded = folder / f"settings.{old_key}.json"
    if not recorded.exists():
        sys.exit(f"no earlier run {old_key} in {folder}")
    earlier = json.loads(recorded.read_text())["settings"]
    for name, other in (("--from-option", old_settings), (old_key, earlier)):
        if _without_parse(settings) != _without_parse(other):
            sys.exit(f"the new run and {name} differ in more than the parse stage: nothing can be carried")
    def then(parse_id: str) -> str:
        return (parse_id.replace(f"+forehead{forehead.VERSION}", "+forehead1") if a.from_forehead1 else parse_id)

    if any(_parser_id(earlier["backends"][v]["parse"]) != _parser_id(then(ids["parse"]))
           for v, ids in old_settings["backends"].items()):
        sys.exit(f"--from-option does not describe the parse stage of {old_key}")
    old, new = H.ItemCache(folder, old_key), H.open_cache(folder, settings, device=variants.device)
    if old.key == new.key:
        sys.exit("the two runs have the same settings: nothing to carry")
    plain, parse = old_variants.full, variants.full.backend("parse")

    @contextlib.contextmanager
    def old_forehead():
        """With --from-forehead1: the forehead growth as the earlier run had it (every occluder part seeds)."""
        if not a.from_forehead1:
            yield
            return
        seeds = forehead.seeds
        forehead.seeds = lambda occluder, points68: np.array(occluder, dtype=bool, copy=True)
        try:
            yield
        finally:
            forehead.seeds = seeds

    pairs = V.select_pairs(read_pairs(a.pairs, a.faces).pairs, (), None)
    photos = sorted({p.a for p in pairs} | {p.b for p in pairs})
    samples = {relative_name(p) for p in photos[:: max(1, len(photos) // V.SAMPLES)][:V.SAMPLES]}
    counts = {"carried": 0, "parse_differs": 0, "not_in_old": 0, "already_new": 0, "failed_or_sample": 0,
              "wider_view_matters": 0}
    old_parse = plain.backend("parse")
    carried: list[tuple[Path, dict]] = []
    t0 = time.perf_counter()
    for i, photo in enumerate(photos):
        if i % shards != shard:
            continue
        rel = relative_name(photo)
        if new.load(rel) is not None:
            counts["already_new"] += 1
            continue
        rec = old.load(rel)
        if rec is None:
            counts["not_in_old"] += 1
            continue
        if rel in samples or rec.get("status") != "ok" or rec.get("occlusion", {}).get("status") != "ok":
            counts["failed_or_sample"] += 1
            continue
        with old_forehead():
            clean = plain.run(photo, stop_after="landmarks")
            rng = H.case_rng(s.seed, rel, 0)
            fam = families[int(rng.integers(len(families)))]
            occ, pl = sample_eval_family(rng, library, fam, H.landmarks_working(clean))
            if (fam, occ.name, pl.to_dict()) != (rec["occlusion"]["family"], rec["occlusion"]["occluder"],
                                                 rec["occlusion"]["placement"]):
                sys.exit(f"{rel}: the occluder drawn now differs from the record's; the runs are not comparable")
            occ_rgb, _ = composite(clean.image.rgb, H.landmarks_working(clean), occ, pl)
            occluded = plain.run(occ_rgb, stop_after="parse")
            # the tool's earlier form parsed the crop alone: a record it carried into a run with the
            # wider view's hands may be wrong where that view adds a hand, so such photos are measured anew
            view_matters = a.recheck_wider_view and not all(
                np.array_equal(old_parse.parse(r.crop.image), r.alpha.labels) for r in (clean, occluded))
        if view_matters:
            counts["wider_view_matters"] += 1
            continue
        if not all(np.array_equal(stages.parse(parse, r.crop, r.image).labels, r.alpha.labels)
                   for r in (clean, occluded)):
            counts["parse_differs"] += 1
            continue
        new.save(rel, rec)
        counts["carried"] += 1
        carried.append((photo, rec))
        if counts["carried"] % 200 == 0:
            print(f"{i + 1}/{len(photos)} {counts} {time.perf_counter() - t0:.0f} s", flush=True)
    print(json.dumps({"shard": a.shard, "old": old_key, "new": new.key, **counts,
                      "seconds": round(time.perf_counter() - t0)}), flush=True)

    if a.check:
        rng = np.random.default_rng(0)
        worst = 0.0
        for k in rng.choice(len(carried), size=min(a.check, len(carried)), replace=False):
            photo, rec = carried[int(k)]
            fresh, _ = V.measure_photo(variants, identity, library, families, photo, s.seed, keep_images=False)
            for cond, feats in rec["features"].items():
                for f, v in feats.items():
                    d = float(np.abs(np.asarray(v) - np.asarray(fresh["features"][cond][f])).max())
                    worst = max(worst, d)
        print(json.dumps({"checked": min(a.check, len(carried)), "max_feature_difference": worst}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
