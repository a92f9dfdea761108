"""M_gamma: the paper's Algorithm 1 ("Face Parsing Map Plus"), vectorised.

Algorithm 1 has two passes over every pixel i of maps A (= M_alpha) and B (= M_beta):

* skin pass (lines 1-10): ``C_i <- A_i`` if ``A_i in O``; else ``C_i <- B_i`` if ``B_i in O``;
  else ``C_i <- A_i``;
* facial-features pass (lines 12-21): the same rule with the feature range ``S``.

Read literally, the second loop's ``else C_i <- A_i`` would overwrite everything the first loop
wrote, making the skin pass dead code. We therefore read the features pass as refining the map
the skin pass produced: its ``A`` is the skin pass's output. That is the only reading in which
both passes have an effect, and it reproduces Fig. 2 (fingers and hair over the skin are
replaced by skin, hidden features are drawn from the landmarks).

Resulting rules, per pixel (``O`` = skin, ``S`` = eyebrows, eyes, nose, lips):

=================  =================  ====================
A                  B                  C
=================  =================  ====================
skin               in S               B (feature from the landmarks)
skin               not in S           skin
in S               skin               skin (pass 1), kept by pass 2
in S               not skin           A
other (occluder,   skin               skin
hair, background)
other              in S               B
other              other              A
=================  =================  ====================
"""
from __future__ import annotations

import numpy as np

from .. import labels as L


def _pass(a: np.ndarray, b: np.ndarray, value_range: tuple[int, ...]) -> np.ndarray:
    """One pass of Algorithm 1: keep A where A is in the range, else take B where B is, else A."""
    a_in = np.isin(a, value_range)
    b_in = np.isin(b, value_range)
    return np.where(a_in, a, np.where(b_in, b, a))


def algorithm1(alpha: np.ndarray, beta: np.ndarray, skin_range=L.SKIN_IDS, feature_range=L.FEATURE_IDS) -> np.ndarray:
    """M_gamma = Algorithm 1(M_alpha, M_beta): skin pass, then facial-features pass."""
    if alpha.shape != beta.shape:
        raise ValueError(f"Algorithm 1 needs maps of the same size, got {alpha.shape} and {beta.shape}")
    c = _pass(alpha, beta, tuple(skin_range))          # lines 1-10
    return _pass(c, beta, tuple(feature_range)).astype(np.uint8)  # lines 12-21


class Algorithm1Merge:
    """Stage ``merge`` backend (the paper's Algorithm 1)."""

    name = "algorithm1"
    version = "1"

    def merge(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        return algorithm1(alpha, beta)


class AlphaOnlyMerge:
    """Ablation backend: M_gamma = M_alpha (no landmark guidance)."""

    name = "none"
    version = "1"

    def merge(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        return alpha.copy()
