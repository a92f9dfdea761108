"""Carry `occgui eval verify` results over a switch of the parser's hand evidence, where it changes nothing.

The hand evidence (``parse.hand_evidence``, :mod:`occgui.parsing.hand_evidence`) alters M_alpha only
where MediaPipe's hand-landmark model finds a hand in the crop: its first step is one detection on the
crop, and with no hand found the parse output is the network's, bit for bit, so every stage after it
(and the verify record) is the same as in a run without the evidence. This tool re-derives, for each
photo of an earlier run recorded *without* the evidence, the two crops its record came from (the clean
photo's, and the occluded photo's: the same seeded occluder, checked against the record), runs that
detection on both, and copies the record under the new run's fingerprint when neither crop has a hand.
Photos with a hand (and failed or sample photos) are left for ``occgui eval verify`` to measure.
``--check N`` re-measures N carried photos in full and compares their features with the carried ones.

    python tools/carry_verify_cache.py --faces LFW --pairs pairs.txt --out OUT [--shard 0/2] [--check 20]

OUT is the output folder of the earlier run (its ``cache/verify``). Afterwards run the usual
``occgui eval verify`` with the same ``--faces/--pairs/--out`` (it measures what is left and writes
the report). A development tool, not part of the product.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    from occgui.eval import harness as H
    from occgui.eval import verify as V
    from occgui.eval.lfw import read_pairs, relative_name
    from occgui.parsing.hand_evidence import VERSION, _detect_once
    from occgui.parsing.settings import UNetSettings
    from occgui.pipeline.runner import Pipeline, PipelineConfig
    from occgui.training.occlusion.occluders import composite, sample_eval_family

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=Path, required=True)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--occluders", type=Path, default=Path("../shared/data/occluders"))
    ap.add_argument("--shard", default="0/1", help="I/N: this process takes every N-th photo from the I-th")
    ap.add_argument("--check", type=int, default=0, help="re-measure this many carried photos in full")
    a = ap.parse_args(argv)
    shard, shards = (int(x) for x in a.shard.split("/"))

    s = V.VerifySettings(faces=a.faces, pairs=a.pairs, occluders=a.occluders, out=a.out, quiet=True)
    settings, variants, identity, library, families = V._run_settings(s)
    if not UNetSettings().hand_evidence:
        sys.exit("the hand evidence is not the default: nothing to carry over")
    tag = f"+hands{VERSION}"
    old_settings = json.loads(json.dumps(settings))
    for ids in old_settings["backends"].values():
        if not ids["parse"].endswith(tag):
            sys.exit(f"unexpected parse backend id {ids['parse']!r}")
        ids["parse"] = ids["parse"][: -len(tag)]
    folder = a.out / "cache" / "verify"
    old_key = H.fingerprint(old_settings)
    if not (folder / f"settings.{old_key}.json").exists():
        sys.exit(f"no run without the hand evidence ({old_key}) in {folder}")
    old, new = H.ItemCache(folder, old_key), H.open_cache(folder, settings, device=variants.device)
    cfg = variants.full.config
    plain = Pipeline(PipelineConfig(device=cfg.device, crop_size=cfg.crop_size, texture_size=cfg.texture_size,
                                    settings={"parse": replace(UNetSettings(), hand_evidence=False)}))

    pairs = V.select_pairs(read_pairs(a.pairs, a.faces).pairs, (), None)
    photos = sorted({p.a for p in pairs} | {p.b for p in pairs})
    samples = {relative_name(p) for p in photos[:: max(1, len(photos) // V.SAMPLES)][:V.SAMPLES]}
    counts = {"carried": 0, "hand": 0, "not_in_old": 0, "already_new": 0, "failed_or_sample": 0}
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
        clean = plain.run(photo, stop_after="landmarks")
        rng = H.case_rng(s.seed, rel, 0)
        fam = families[int(rng.integers(len(families)))]
        occ, pl = sample_eval_family(rng, library, fam, H.landmarks_working(clean))
        if (fam, occ.name, pl.to_dict()) != (rec["occlusion"]["family"], rec["occlusion"]["occluder"],
                                             rec["occlusion"]["placement"]):
            sys.exit(f"{rel}: the occluder drawn now differs from the record's; the runs are not comparable")
        occ_rgb, _ = composite(clean.image.rgb, H.landmarks_working(clean), occ, pl)
        occluded = plain.run(occ_rgb, stop_after="detect")
        if _detect_once(clean.crop.image) or _detect_once(occluded.crop.image):
            counts["hand"] += 1
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
