"""Issue 16 point 5 as code: FISN becomes the default ``synthesize`` backend only when it wins.

:func:`decide` is a pure function of the measured numbers (:class:`Evidence`) and returns a typed
:class:`Decision`: FISN wins when **every** criterion below holds (strict where the issue says
"lower"/"above", ties count as not winning):

1. ``identity/<family>``: the I_out identity distance (dlib, to the clean photo; ``occgui eval
   deocclusion``) of FISN is lower than the classical backend's, for every occluder family;
2. ``verify/raw`` and ``verify/occluded_crop``: verification with both photos occluded (``occgui
   eval verify``): the full pipeline with FISN above the ``raw`` pipeline and above the occluded
   photo crop itself (de-occlusion must help recognition, not hurt it);
3. ``hidden_feature_iou``: the hidden features found again by the parser in I_out where M_gamma
   puts them (case-weighted mean over the families and feature groups hidden in at least
   ``MIN_HIDDEN_CASES`` cases) no worse than the classical backend's;
4. ``texture_l1``: the texture L1 over the occluded texels (``occgui eval occlusion``, once with the
   classical backend and once with ``--backend synthesize=fisn``) no worse than the classical one's.

The issue's *target* -- closing half of the classical pipeline's clean-to-occluded verification
drop -- is reported (:attr:`Decision.drop_half_closed`) but does not decide.

:func:`evidence_from_reports` reads those numbers from the four reports; :func:`write_record`
writes the decision record ``checkpoints/fisn_decision.json`` (numbers, decision, the digest of the
checkpoint they were measured on); :func:`record_problems` re-checks a record: its decision must
be what :func:`decide` makes of its numbers and its digest that of the shipped weights. A test
(``tests/test_fisn_decision.py``) ties ``default_backends.FISN_IS_DEFAULT`` to it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import OccguiError

RECORD_NAME = "fisn_decision.json"
FORMAT = "occgui.fisn_decision"
FORMAT_VERSION = 1
#: The occluder families the identity criterion needs (``occgui.eval.deocclusion.FAMILIES``).
REQUIRED_FAMILIES: tuple[str, ...] = ("hand_over_eye", "sunglasses", "surgical_mask")
#: A feature group's IoU counts when it was hidden in at least this many cases of a family.
MIN_HIDDEN_CASES = 3


# ----------------------------------------------------------------------------- typed numbers
@dataclass(frozen=True)
class FamilyIdentity:
    """Mean I_out identity distance (dlib, lower is more like the person) of one occluder family."""

    family: str
    classical: float
    fisn: float
    cases: int = 0


@dataclass(frozen=True)
class Verification:
    """Verification accuracy (%) with both photos occluded, and the classical pipeline's clean one."""

    fisn: float                    # render of the full pipeline with FISN's I_out
    raw: float                     # render of the raw pipeline (no merge, no de-occlusion)
    occluded_crop: float           # the occluded photo crop itself (no reconstruction)
    classical: float | None = None         # render of the full pipeline with the classical I_out
    classical_clean: float | None = None   # the same, both photos clean (for the drop target)
    pairs: int = 0
    subset: str = "all"


@dataclass(frozen=True)
class FeatureQuality:
    """Hidden-feature IoU (higher is better) and texture L1 over occluded texels (0-255, lower is better)."""

    hidden_iou_classical: float
    hidden_iou_fisn: float
    texture_l1_classical: float
    texture_l1_fisn: float
    hidden_cases: int = 0


@dataclass(frozen=True)
class Evidence:
    identity: tuple[FamilyIdentity, ...]
    verification: Verification
    features: FeatureQuality

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Evidence:
        try:
            return cls(identity=tuple(FamilyIdentity(**f) for f in d["identity"]),
                       verification=Verification(**d["verification"]), features=FeatureQuality(**d["features"]))
        except (KeyError, TypeError) as e:
            raise OccguiError(f"FISN decision evidence is incomplete or malformed ({e})") from None


@dataclass(frozen=True)
class Criterion:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    """FISN wins when every criterion passed; ``failed`` names the others."""

    criteria: tuple[Criterion, ...]
    drop_half_closed: bool | None = None      # the target (informative, does not decide)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def wins(self) -> bool:
        return bool(self.criteria) and all(c.passed for c in self.criteria)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.criteria if not c.passed)

    def summary(self) -> str:
        head = "FISN wins: it may become the default" if self.wins else \
            f"FISN does not win ({', '.join(self.failed)} failed): the classical backend stays the default"
        return "\n".join([head, *(f"  [{'x' if c.passed else ' '}] {c.name}: {c.detail}" for c in self.criteria),
                          *(f"  note: {n}" for n in self.notes)])


# ----------------------------------------------------------------------------- the rule
def decide(ev: Evidence, required_families: tuple[str, ...] = REQUIRED_FAMILIES) -> Decision:
    """The default-selection rule (module docstring); a pure function of ``ev``."""
    crit: list[Criterion] = []
    by_family = {f.family: f for f in ev.identity}
    for fam in dict.fromkeys((*required_families, *by_family)):
        f = by_family.get(fam)
        if f is None:
            crit.append(Criterion(f"identity/{fam}", False, "not measured"))
        else:
            crit.append(Criterion(f"identity/{fam}", f.fisn < f.classical,
                                  f"FISN {f.fisn:.3f} vs classical {f.classical:.3f} (lower wins)"))
    v = ev.verification
    crit.append(Criterion("verify/raw", v.fisn > v.raw, f"full with FISN {v.fisn:.2f} % vs raw {v.raw:.2f} %"))
    crit.append(Criterion("verify/occluded_crop", v.fisn > v.occluded_crop,
                          f"full with FISN {v.fisn:.2f} % vs the occluded photo crop {v.occluded_crop:.2f} %"))
    q = ev.features
    crit.append(Criterion("hidden_feature_iou", q.hidden_iou_fisn >= q.hidden_iou_classical,
                          f"FISN {q.hidden_iou_fisn:.3f} vs classical {q.hidden_iou_classical:.3f} (no worse)"))
    crit.append(Criterion("texture_l1", q.texture_l1_fisn <= q.texture_l1_classical,
                          f"FISN {q.texture_l1_fisn:.2f} vs classical {q.texture_l1_classical:.2f} (no worse)"))
    half, notes = None, []
    if v.classical is not None and v.classical_clean is not None:
        drop = v.classical_clean - v.classical
        if drop <= 0:
            notes.append(f"target: the classical pipeline has no clean-to-occluded drop here ({v.classical_clean:.1f} "
                         f"-> {v.classical:.1f}): nothing to close")
        else:
            half = v.fisn >= v.classical + 0.5 * drop
            notes.append(f"target: the classical drop is {drop:.1f} points ({v.classical_clean:.1f} -> "
                         f"{v.classical:.1f}); FISN closes {(v.fisn - v.classical) / drop * 100:.0f} % of it "
                         f"({'met' if half else 'not met'}: half)")
    return Decision(tuple(crit), half, tuple(notes))


# ----------------------------------------------------------------------------- from the reports
def _load(path) -> dict:
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise OccguiError(f"report not found: {p}") from None
    except (OSError, ValueError) as e:
        raise OccguiError(f"cannot read report {p}: {str(e).splitlines()[0][:200]}") from None


def identity_and_iou(deocclusion: dict) -> tuple[tuple[FamilyIdentity, ...], float, float, int]:
    """Per-family identity (``ours`` is the classical backend, ``fisn`` FISN) and the pooled
    hidden-feature IoU of an ``occgui eval deocclusion --fisn ...`` report."""
    from .. import labels as L

    table = deocclusion.get("table") or {}
    if not table or not all("identity_fisn" in r for r in table.values()):
        raise OccguiError("the de-occlusion report has no FISN column: run `occgui eval deocclusion` with --fisn")
    synth = (deocclusion.get("protocol") or {}).get("synthesizer", "")
    if synth.startswith("fisn@"):
        raise OccguiError(f"the de-occlusion report's own synthesizer is {synth}: run it with the classical "
                          "backend and --fisn")
    ident = tuple(FamilyIdentity(fam, float(r["identity_ours"]), float(r["identity_fisn"]), int(r["n"]))
                  for fam, r in table.items())
    num = {"ours": 0.0, "fisn": 0.0}
    n = 0
    for r in table.values():
        for g in L.FEATURE_GROUPS:
            k = int(r.get(f"n_hidden_{g}") or 0)
            if k >= MIN_HIDDEN_CASES and r.get(f"iou_{g}_ours") is not None and r.get(f"iou_{g}_fisn") is not None:
                num["ours"] += k * float(r[f"iou_{g}_ours"])
                num["fisn"] += k * float(r[f"iou_{g}_fisn"])
                n += k
    if n == 0:
        raise OccguiError(f"the de-occlusion report has no feature hidden in at least {MIN_HIDDEN_CASES} cases")
    return ident, num["ours"] / n, num["fisn"] / n, n


def verification(verify: dict, subset: str = "all") -> Verification:
    """Accuracies with both photos occluded from an ``occgui eval verify --fisn ...`` report
    (``subset``: ``all`` pairs or the ``held-out`` Q-S pairs)."""
    if subset == "held-out":
        ho = verify.get("held_out_pairs") or {}
        res, pairs = ho.get("results") or {}, int(ho.get("pairs") or 0)
    elif subset == "all":
        res, pairs = verify.get("results") or {}, int((verify.get("settings") or {}).get("pairs_used") or 0)
    else:
        raise OccguiError(f"unknown verification subset {subset!r} (all or held-out)")

    def acc(key):
        r = res.get(key)
        return None if r is None else float(r["accuracy"]["mean"])

    fisn = acc("render_fisn/occluded")
    if fisn is None:
        raise OccguiError("the verification report has no FISN variant: run `occgui eval verify` with --fisn")
    return Verification(fisn=fisn, raw=acc("render_raw/occluded"), occluded_crop=acc("photo/occluded"),
                        classical=acc("render_full/occluded"), classical_clean=acc("render_full/clean"),
                        pairs=pairs, subset=subset)


def texture_l1(occlusion: dict) -> float:
    """Mean texture L1 over occluded texels of the ``full`` variant of an ``occgui eval occlusion``
    report: the held-out identities' (Q-S) when reported, else all cases."""
    from .lfw import HELD_OUT_GROUP

    group = (occlusion.get("by_identity_group") or {}).get(HELD_OUT_GROUP)
    row = group if group and (group.get("texture_l1_full") or {}).get("n") else \
        (occlusion.get("per_family") or {}).get("all")
    v = (row or {}).get("texture_l1_full") or {}
    if not v.get("n"):
        raise OccguiError("the occlusion report has no texture L1 over occluded texels")
    return float(v["mean"])


def occlusion_synthesizer(occlusion: dict) -> str:
    backends = ((occlusion.get("settings") or {}).get("backends") or {}).get("full") or {}
    return str(backends.get("synthesize", ""))


def evidence_from_reports(deocclusion, verify, texture_classical, texture_fisn, *, verify_subset: str = "all"
                          ) -> Evidence:
    """:class:`Evidence` from the four report files (paths or loaded dicts)."""
    deocc, ver, tc, tf = (_load(x) if not isinstance(x, dict) else x
                          for x in (deocclusion, verify, texture_classical, texture_fisn))
    if occlusion_synthesizer(tf) and not occlusion_synthesizer(tf).startswith("fisn@"):
        raise OccguiError("the FISN texture report was not run with --backend synthesize=fisn "
                          f"(its synthesizer is {occlusion_synthesizer(tf)})")
    if occlusion_synthesizer(tc).startswith("fisn@"):
        raise OccguiError("the classical texture report was run with the fisn synthesizer")
    ident, iou_c, iou_f, n = identity_and_iou(deocc)
    return Evidence(identity=ident, verification=verification(ver, verify_subset),
                    features=FeatureQuality(iou_c, iou_f, texture_l1(tc), texture_l1(tf), n))


# ----------------------------------------------------------------------------- the record
def record_path() -> Path:
    """Where the committed decision record lives: ``checkpoints/fisn_decision.json``."""
    from ..resources import checkpoint_path

    return checkpoint_path(RECORD_NAME)


def write_record(path, evidence: Evidence, checkpoint, sources: dict | None = None) -> Decision:
    """Decide and write the record (the numbers, the decision, the checkpoint's digest)."""
    from ..resources import checkpoint_digest
    from .report import software_versions, timestamp

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise OccguiError(f"FISN checkpoint not found: {checkpoint}")
    d = decide(evidence)
    rec = {"format": FORMAT, "format_version": FORMAT_VERSION, "checkpoint": checkpoint.name,
           "checkpoint_digest": checkpoint_digest(checkpoint), "wins": d.wins, "failed": list(d.failed),
           "drop_half_closed": d.drop_half_closed, "criteria": [asdict(c) for c in d.criteria],
           "notes": list(d.notes), "evidence": evidence.to_dict(), "sources": sources or {},
           "created": timestamp(), "software": software_versions()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(rec, indent=1) + "\n")
    return d


@dataclass(frozen=True)
class DecisionRecord:
    wins: bool
    checkpoint: str
    checkpoint_digest: str
    evidence: Evidence


def read_record(path) -> DecisionRecord:
    """The record at ``path``; a malformed one is a one-line error naming it."""
    d = _load(path)
    if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("format_version") != FORMAT_VERSION:
        raise OccguiError(f"{path} is not an occgui FISN decision record (format {FORMAT} v{FORMAT_VERSION})")
    try:
        return DecisionRecord(bool(d["wins"]), str(d["checkpoint"]), str(d["checkpoint_digest"]),
                              Evidence.from_dict(d["evidence"]))
    except KeyError as e:
        raise OccguiError(f"{path}: the decision record lacks {e}") from None


def record_problems(record: DecisionRecord, checkpoint) -> list[str]:
    """Why ``record`` cannot stand for the weights at ``checkpoint`` (empty: it can): its decision
    must be what :func:`decide` makes of its numbers, and it must have measured these weights."""
    from ..resources import checkpoint_digest

    out = []
    again = decide(record.evidence)
    if again.wins != record.wins:
        out.append(f"the record says wins={record.wins} but its numbers give wins={again.wins} "
                   f"(failed: {', '.join(again.failed) or 'none'})")
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        out.append(f"the record is for {record.checkpoint} but no FISN checkpoint is at {checkpoint}")
    elif checkpoint_digest(checkpoint) != record.checkpoint_digest:
        out.append(f"the record measured weights {record.checkpoint_digest}, the shipped checkpoint is "
                   f"{checkpoint_digest(checkpoint)}: re-run the evaluation and `occgui eval fisn-decision`")
    return out
