"""Write an LFW-style pairs file within the held-out identities Q-S (used for FISN's verification
comparison, ``checkpoints/fisn_generator.md``).

Same-person pairs are LFW's own (``pairs.txt`` lines whose identity starts with Q, R or S, in a
seeded order); different-person pairs are drawn at random (seeded) between two Q-S identities, as
LFW's own different pairs with both photos in Q-S are too few (55). The file has 10 folds of
``n`` same and ``n`` different pairs, readable by ``occgui eval verify --pairs``. With
``--reuse-photos`` the different-person pairs are drawn among the photos of the file's same-person
pairs (two photos of different people), so the file needs no photo beyond those: the evaluations'
cost is per photo (``occgui eval verify-fit`` fits each photo), not per pair.

    python tools/make_qs_pairs.py 6 pairs_qs.txt [--lfw ../shared/data/faces/lfw] [--reuse-photos]
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path


def make_pairs(lfw: Path, n: int, seed: int = 0, reuse_photos: bool = False) -> list[str]:
    faces = lfw / "lfw-deepfunneled"
    same = [t for t in (ln.split() for ln in (lfw / "pairs.txt").read_text().splitlines()[1:])
            if len(t) == 3 and t[0][0] in "QRS"]
    rng = random.Random(seed)
    rng.shuffle(same)
    if len(same) < 10 * n:
        raise SystemExit(f"only {len(same)} Q-S same-person pairs: ask for at most {len(same) // 10} per fold")
    people = sorted(p.name for p in faces.iterdir() if p.is_dir() and p.name[0] in "QRS")
    count = {p: len(list((faces / p).glob("*.jpg"))) for p in people}
    pool = sorted({(t[0], int(t[i])) for t in same[:10 * n] for i in (1, 2)})
    lines, used = [f"10\t{n}"], set()
    for fold in range(10):
        lines += ["\t".join(t) for t in same[fold * n:(fold + 1) * n]]
        k = 0
        while k < n:
            if reuse_photos:
                (a, i), (b, j) = rng.sample(pool, 2)
                if a == b:
                    continue
                key = (a, i, b, j)
            else:
                a, b = rng.sample(people, 2)
                key = (a, rng.randrange(count[a]) + 1, b, rng.randrange(count[b]) + 1)
            if key not in used:
                used.add(key)
                lines.append("\t".join(map(str, key)))
                k += 1
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="same (and different) pairs per fold")
    ap.add_argument("output")
    ap.add_argument("--lfw", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/faces/lfw"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse-photos", action="store_true",
                    help="draw the different-person pairs among the same-person pairs' photos")
    args = ap.parse_args()
    lines = make_pairs(Path(args.lfw), args.n, args.seed, args.reuse_photos)
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"{len(lines) - 1} pairs -> {args.output}")


if __name__ == "__main__":
    main()
