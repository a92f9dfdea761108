"""The stage table: every stage's name, inputs, result field, titles, backend protocol and function.

:data:`STAGE_TABLE` is the one list of the pipeline's stages (paper Fig. 1). The runner, the CLI,
the GUI (stage strip, maps, views), the GUI's compute process and the evaluation all read it;
nothing else lists stages. Each stage function takes its backend and the results of the stages
named in ``inputs`` (in that order) and returns a typed result (``occgui.results``).

The backend interfaces (``typing.Protocol``) are the seams where the paper's trained networks and
the morphable-model fit replace today's defaults (see ``backends.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Protocol

import numpy as np

from ..errors import NoFaceError
from ..results import FaceCrop, FaceDetection, FaceMesh, Landmarks, LoadedImage, ParsingMap, Synthesis, Texture


class FaceDetectorBackend(Protocol):
    name: str
    version: str

    def detect(self, rgb: np.ndarray) -> list[FaceDetection]: ...


class LandmarkBackend(Protocol):
    """Crop -> 68 points (and the dense mesh when the backend has one). ``alpha`` is M_alpha of the
    same crop: an occlusion-aware backend uses it to place the points the occluder hides."""
    name: str
    version: str

    def detect(self, crop_rgb: np.ndarray, alpha: np.ndarray | None = None) -> Landmarks: ...


class ParsingBackend(Protocol):
    """N_alpha: crop (SxSx3 uint8) -> M_alpha label ids (SxS uint8). A backend with a true ``reads_photo``
    attribute is called with ``photo=`` (the working image) and ``to_crop=`` (its affine to the crop) too."""
    name: str
    version: str

    def parse(self, crop_rgb: np.ndarray) -> np.ndarray: ...


class LandmarkMapBackend(Protocol):
    name: str
    version: str

    def render(self, points: np.ndarray, size: int) -> np.ndarray: ...


class MergeBackend(Protocol):
    name: str
    version: str

    def merge(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray: ...


class SynthesisBackend(Protocol):
    """I_out from the crop, the landmarks, M_alpha (what is hidden), M_beta (where the landmarks put
    each feature) and M_gamma (the merged map the output must follow)."""
    name: str
    version: str

    def synthesize(self, crop_rgb: np.ndarray, landmarks: Landmarks, alpha: np.ndarray, beta: np.ndarray,
                   gamma: np.ndarray) -> Synthesis: ...


class GeometryBackend(Protocol):
    """The face mesh from the photo, its crop and landmarks; a fitting backend (the morphable
    model of §3.4-3.5) also reads I_out (``synthesis``), M_alpha as painted (``alpha``: occluder
    pixels excluded from Eq. 13) and M_gamma (``gamma``: Eq. 13's attention). A backend that reads
    only some of them says so when it is registered (``backends.register(..., reads=...)``), so
    its cached mesh survives changes to the others."""
    name: str
    version: str

    def build(self, image: LoadedImage, crop: FaceCrop, landmarks: Landmarks, *, synthesis: Synthesis | None = None,
              alpha: ParsingMap | None = None, gamma: ParsingMap | None = None) -> FaceMesh: ...


class TextureBackend(Protocol):
    name: str
    version: str

    def build(self, image: LoadedImage, crop: FaceCrop, alpha: np.ndarray, synthesis: Synthesis,
              mesh: FaceMesh) -> Texture: ...


def load(source, *, max_side: int) -> LoadedImage:
    from ..imageio import load_image

    return load_image(source, max_side=max_side)


def detect(backend: FaceDetectorBackend, image: LoadedImage, *, face_index: int, crop_size: int) -> FaceCrop:
    """Detect faces, pick the ``face_index``-th largest, and cut the similarity-aligned crop."""
    from ..detection.crop import aligned_crop

    faces = sorted(backend.detect(image.rgb), key=lambda d: -d.area)
    if not faces:
        raise NoFaceError("no face found in the photo")
    if not 0 <= face_index < len(faces):
        raise NoFaceError(f"face {face_index} requested but only {len(faces)} face(s) found "
                          f"(faces are numbered from 0, largest first)")
    return aligned_crop(image.rgb, faces[face_index], crop_size, face_index=face_index, num_faces=len(faces))


def detect_landmarks(backend: LandmarkBackend, crop: FaceCrop, alpha: ParsingMap | None = None) -> Landmarks:
    """The landmarks of the crop (paper §3.1); M_alpha tells an occlusion-aware backend what is hidden."""
    lm = backend.detect(crop.image, None if alpha is None else alpha.labels)
    if lm.detected_points is None:
        lm = replace(lm, detected_points=lm.points.copy())
    return replace(lm, warnings=_landmark_warnings(lm.points, crop))


def _landmark_warnings(points: np.ndarray, crop: FaceCrop) -> tuple[str, ...]:
    from ..landmarks.plausibility import check

    return tuple(check(points, crop.size, crop.working_to_crop(crop.detection.keypoints[:4])))


def apply_landmark_edit(detected: Landmarks, image: LoadedImage, crop: FaceCrop, photo_points) -> Landmarks:
    """Replace the detected 68 points by user-corrected ones given in photo pixels."""
    from ..landmarks.ibug68 import checked_points68

    pts = checked_points68(photo_points, "corrected landmarks")
    crop_pts = crop.working_to_crop(image.photo_to_working(pts))
    return replace(detected, points=crop_pts, edited=True, warnings=_landmark_warnings(crop_pts, crop))


def parse(backend: ParsingBackend, crop: FaceCrop, image: LoadedImage | None = None) -> ParsingMap:
    """M_alpha = N_alpha(I_fac) (paper §3.2). A backend whose ``reads_photo`` is true also gets the
    working photo and the crop's transform (``photo=``, ``to_crop=``): evidence from around the crop."""
    if image is not None and getattr(backend, "reads_photo", False):
        return ParsingMap(backend.parse(crop.image, photo=image.rgb, to_crop=crop.to_crop), "alpha", backend.name)
    return ParsingMap(backend.parse(crop.image), "alpha", backend.name)


def landmark_map(backend: LandmarkMapBackend, crop: FaceCrop, landmarks: Landmarks) -> ParsingMap:
    """M_beta: regions formed by connecting the landmarks (paper §3.2), at the crop's size."""
    return ParsingMap(backend.render(landmarks.points, crop.size), "beta", backend.name)


def merge(backend: MergeBackend, alpha: ParsingMap, beta: ParsingMap) -> ParsingMap:
    """M_gamma = Algorithm 1 (M_alpha, M_beta)."""
    return ParsingMap(backend.merge(alpha.labels, beta.labels), "gamma", backend.name)


def synthesize(backend: SynthesisBackend, crop: FaceCrop, landmarks: Landmarks, alpha: ParsingMap,
               beta: ParsingMap, gamma: ParsingMap) -> Synthesis:
    """I_out: the de-occluded face following M_gamma (paper §3.3)."""
    return backend.synthesize(crop.image, landmarks, alpha.labels, beta.labels, gamma.labels)


def geometry(backend: GeometryBackend, image: LoadedImage, crop: FaceCrop, landmarks: Landmarks,
             synthesis: Synthesis | None = None, alpha: ParsingMap | None = None,
             gamma: ParsingMap | None = None) -> FaceMesh:
    """The face mesh; ``synthesis`` (I_out), ``alpha`` (M_alpha as painted) and ``gamma`` (M_gamma)
    are passed (as keywords) only to a backend that reads them: one registered with
    ``reads=("load", "detect", "landmarks")`` keeps the three-argument ``build``."""
    extra = {k: v for k, v in (("synthesis", synthesis), ("alpha", alpha), ("gamma", gamma)) if v is not None}
    return backend.build(image, crop, landmarks, **extra)


def texture(backend: TextureBackend, image: LoadedImage, crop: FaceCrop, alpha: ParsingMap, synthesis: Synthesis,
            mesh: FaceMesh, *, texture_size: int) -> Texture:
    """The UV texture map, ``texture_size`` texels square."""
    tex = backend.build(image, crop, alpha.labels, synthesis, mesh)
    if tex.image.shape[:2] != (texture_size, texture_size):
        from ..errors import OccguiError
        raise OccguiError(f"texture backend {backend.name!r} built a {tex.image.shape[1]}x{tex.image.shape[0]} "
                          f"texture, {texture_size}x{texture_size} was asked for")
    return tex


# ----------------------------------------------------------------------------- the stage table
@dataclass(frozen=True)
class StageSpec:
    """One stage of the pipeline."""

    name: str                       # the stage's name (``--backend NAME=...``, events, caches)
    inputs: tuple[str, ...]         # stages whose results ``function`` reads, in its argument order
    field: str                      # the attribute of ``PipelineResult`` holding the result
    result: type                    # the result's type (``occgui.results``)
    title: str                      # progress title ("Detecting face")
    label: str                      # short label (the GUI's stage strip)
    protocol: type | None           # the backend interface; None: the stage has no backend
    function: Callable              # ``function(backend, *inputs, **{c: config.c for c in config})``;
                                    # ``load`` has no backend: ``function(source, max_side=...)``
    config: tuple[str, ...] = ()    # ``PipelineConfig`` fields the result depends on (keyword arguments)


STAGE_TABLE: tuple[StageSpec, ...] = (
    StageSpec("load", (), "image", LoadedImage, "Loading photo", "Load", None, load, ("max_side",)),
    StageSpec("detect", ("load",), "crop", FaceCrop, "Detecting face", "Detect", FaceDetectorBackend, detect,
              ("face_index", "crop_size")),
    StageSpec("parse", ("detect", "load"), "alpha", ParsingMap, "Parsing (M\u03b1)", "M\u03b1 parse", ParsingBackend,
              parse),
    StageSpec("landmarks", ("detect", "parse"), "landmarks", Landmarks, "Landmarks", "Landmarks", LandmarkBackend,
              detect_landmarks),
    StageSpec("landmark_map", ("detect", "landmarks"), "beta", ParsingMap, "Landmark map (M\u03b2)", "M\u03b2 map",
              LandmarkMapBackend, landmark_map),
    StageSpec("merge", ("parse", "landmark_map"), "gamma", ParsingMap, "Merging (M\u03b3)", "M\u03b3 merge",
              MergeBackend, merge),
    StageSpec("synthesize", ("detect", "landmarks", "parse", "landmark_map", "merge"), "synthesis", Synthesis,
              "De-occluding (I_out)", "I_out", SynthesisBackend, synthesize),
    StageSpec("geometry", ("load", "detect", "landmarks", "synthesize", "parse", "merge"), "mesh", FaceMesh,
              "Geometry", "Geometry", GeometryBackend, geometry),
    StageSpec("texture", ("load", "detect", "parse", "synthesize", "geometry"), "texture", Texture, "Texture",
              "Texture", TextureBackend, texture, ("texture_size",)),
)
#: The stage names in run order.
STAGES: tuple[str, ...] = tuple(s.name for s in STAGE_TABLE)
#: The stages that have backends (every stage but ``load``).
STAGES_WITH_BACKENDS: tuple[str, ...] = tuple(s.name for s in STAGE_TABLE if s.protocol is not None)
_BY_NAME = {s.name: s for s in STAGE_TABLE}
#: The stages that may read M_alpha *as the user painted it* (``occgui.corrections.AlphaEdit``):
#: every reader of ``parse`` but the landmark stage, which keeps the parser's own map, so that
#: painting the occluder recomputes only ``merge`` and what follows. Whether a stage's backend
#: reads it at all is :func:`painted_alpha_readers` of the backends' reads.
PAINTED_ALPHA_READERS: tuple[str, ...] = tuple(s.name for s in STAGE_TABLE if "parse" in s.inputs
                                               and s.name != "landmarks")

#: ``{stage: inputs its backend reads}``: a subset of the stage's ``inputs`` per stage (a stage not
#: named reads all of them); see ``backends.reads_of``.
Reads = dict


def inputs_read(spec: StageSpec, reads: Reads | None = None) -> tuple[str, ...]:
    """The inputs of ``spec`` its backend reads (all of them unless ``reads`` says otherwise)."""
    given = (reads or {}).get(spec.name)
    return spec.inputs if given is None else tuple(d for d in spec.inputs if d in given)


def painted_alpha_readers(reads: Reads | None = None) -> tuple[str, ...]:
    """The stages that read M_alpha as painted, given what their backends read."""
    return tuple(s for s in PAINTED_ALPHA_READERS if "parse" in inputs_read(stage(s), reads))


def stage(name: str) -> StageSpec:
    """The table entry of stage ``name``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        from ..errors import OccguiError
        raise OccguiError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}") from None


def stage_of_field(field_name: str) -> StageSpec:
    """The table entry whose result is ``PipelineResult.<field_name>``."""
    return next(s for s in STAGE_TABLE if s.field == field_name)


def downstream_of(name: str, reads: Reads | None = None) -> tuple[str, ...]:
    """The stages whose results depend, directly or not, on ``name`` (itself excluded); with
    ``reads`` (``backends.reads_of``), only through the inputs the chosen backends read."""
    out: list[str] = []
    for s in STAGE_TABLE:
        deps = set(inputs_read(s, reads))
        if name in deps or deps & set(out):
            out.append(s.name)
    return tuple(out)
