"""Development experiment (training identities A-P only): can a PCA shape prior fitted to the
visible landmarks place the hidden ones better than MediaPipe's guess under the occluder?

    PYTHONPATH=. python docs/experiments/landmark_prior_experiment.py 80 sunglasses surgical_mask hand_over_eye

Needs the training clean-set cache (``occgui train parsing`` builds it under $OCCGUI_CACHE). The shape
model (24 PCA modes of Procrustes-aligned 68-point shapes) is built from training photos other
than the ones measured; the occluder is pasted on the clean crop; a point counts as hidden when
it lies under the paste mask (clean or guessed position). Errors are in inter-ocular distances.
Results and the conclusion: docs/experiments/README.md.
"""
import sys

import numpy as np

from occgui.errors import NoFaceError
from occgui.landmarks import ibug68 as I
from occgui.pipeline import backends as B
from occgui.training.occlusion.occluders import composite, load_library, sample_eval_family
from occgui.training.parsing.dataset import load_clean_set
from occgui.training.parsing.train import DEFAULT_CACHE  # $OCCGUI_CACHE or ~/.cache/occgui

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
c = load_clean_set(DEFAULT_CACHE / "parsing_lfw_train_v1_256")
rng0 = np.random.default_rng(5)
perm = rng0.permutation(len(c))
test_idx, model_idx = perm[:int(sys.argv[1])], perm[2000:]
# --- shape model: similarity-normalised 68-point shapes
def normalise(p):
    mu = p.mean(0)
    q = p - mu
    s = np.sqrt((q ** 2).sum() / len(q))
    return q / s
shapes = np.stack([normalise(np.asarray(c.lmk68[i], np.float64)) for i in model_idx])
mean = shapes.mean(0)
for _ in range(3):  # generalised Procrustes (rotation)
    al = []
    for s_ in shapes:
        u, _, vt = np.linalg.svd(s_.T @ mean)
        r = u @ vt
        al.append(s_ @ r)
    shapes = np.stack(al)
    mean = normalise(shapes.mean(0))
X = (shapes - mean).reshape(len(shapes), -1)
U, S, Vt = np.linalg.svd(X, full_matrices=False)
K = 24
P = Vt[:K].T                                  # (136, K)
sd = S[:K] / np.sqrt(len(X))
def fit(pts, vis, lam=1.0, iters=8):
    """similarity T and coefficients b: T(mean + P b) ~ pts on visible points."""
    b = np.zeros(K)
    for _ in range(iters):
        shape = (mean.ravel() + P @ b).reshape(68, 2)
        a, y = shape[vis], pts[vis]
        ma, my = a.mean(0), y.mean(0)
        A, Y = a - ma, y - my
        u, sv, vt = np.linalg.svd(A.T @ Y)
        r = u @ vt
        s = sv.sum() / (A ** 2).sum()
        # map visible target points back into the model frame, solve ridge for b
        yin = ((Y / s) @ r.T) + ma
        Pv = P.reshape(68, 2, K)[vis].reshape(-1, K)
        rhs = (yin - mean[vis]).ravel()
        b = np.linalg.solve(Pv.T @ Pv + lam * np.diag(1 / sd ** 2), Pv.T @ rhs)
    shape = (mean.ravel() + P @ b).reshape(68, 2)
    return ((shape - ma) @ r) * s + my
ctx = B.BackendContext("cpu", 256, 1024, {})
lmk = B.create("landmarks", None, ctx)
lib = load_library(REPO.parent / "shared" / "data" / "occluders")
for fam in sys.argv[2:]:
    errs = {"mp": [], "prior": [], "blend": []}
    for k, i in enumerate(test_idx):
        crop = np.asarray(c.crops[i])
        p0 = np.asarray(c.lmk68[i], np.float64)
        rng = np.random.default_rng([11, k])
        occ, pl = sample_eval_family(rng, lib, fam, p0)
        rgb, mask = composite(crop, p0, occ, pl)
        try:
            p1 = np.asarray(lmk.detect(rgb).points, np.float64)
        except NoFaceError:
            continue
        xi = np.clip(np.rint(p1).astype(int), 0, 255)
        x0 = np.clip(np.rint(p0).astype(int), 0, 255)
        hidden = mask[xi[:, 1], xi[:, 0]] | mask[x0[:, 1], x0[:, 0]]
        if hidden.sum() < 3 or (~hidden).sum() < 10:
            continue
        iod = I.interocular(p0)
        pr = fit(p1, ~hidden)
        e = lambda q, hidden=hidden, p0=p0, iod=iod: np.linalg.norm(q[hidden] - p0[hidden], axis=1).mean() / iod
        errs["mp"].append(e(p1))
        errs["prior"].append(e(pr))
        errs["blend"].append(e(0.5 * (p1 + pr)))
    print(fam, len(errs["mp"]), {k: round(float(np.mean(v)), 4) for k, v in errs.items()}, flush=True)
