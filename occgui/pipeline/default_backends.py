"""Registers the backends shipped with occgui. Imports are lazy: a backend's module is imported
only when it is created, so listing backends stays cheap (the settings classes live in small
``settings.py`` modules of their packages)."""
from __future__ import annotations

from ..geometry.settings import MorphableSettings
from ..landmarks.settings import RefinerSettings
from ..parsing.settings import UNetSettings
from ..synthesis.settings import FISNSettings, SymmetricSettings, TeleaSettings
from ..texture.settings import UVSamplerSettings
from .backends import register

#: Whether FISN is the default ``synthesize`` backend. Only the evaluation decides: it may be True
#: only when the committed decision record (``checkpoints/fisn_decision.json``, written by
#: ``occgui eval fisn-decision``) says FISN won on the shipped weights
#: (tests/test_fisn_decision.py::test_default_synthesis_follows_the_decision_record).
FISN_IS_DEFAULT = False
#: Above the classical ``symmetric`` backend (10) when FISN is the default, else below it.
FISN_PRIORITY = 20 if FISN_IS_DEFAULT else 5
#: Whether the learned landmark refiner (trained on pasted occluders) is the default ``landmarks``
#: backend. It is not: with a parser that finds real occluders its gate opens on real photos, and
#: there it moves the hidden points for the worse -- on the labelled real occlusions' dev split the
#: hidden points' NME was 0.058 refined against 0.021 for MediaPipe alone, every type worse or
#: equal (``checkpoints/parsing_unet.md``). MediaPipe's own guess of hidden points is the default;
#: ``--backend landmarks=mediapipe-refined`` keeps the refiner available (it still helps on pasted
#: occluders, the way it was trained).
REFINER_IS_DEFAULT = False
#: Above plain MediaPipe (10) when the refiner is the default, else below it.
REFINER_PRIORITY = 20 if REFINER_IS_DEFAULT else 5


def _lazy(module: str, cls: str):
    def factory(ctx):
        import importlib
        import inspect

        klass = getattr(importlib.import_module(module), cls)
        takes_ctx = len(inspect.signature(klass).parameters) > 0
        return klass(ctx) if takes_ctx else klass()
    return factory


def _unet_parser(ctx):
    from ..parsing.unet_parser import UNetParser

    st = ctx.settings
    return UNetParser(ctx, checkpoint=st.checkpoint or None, flip=st.flip,
                      occluder_threshold=st.occluder_threshold or None, hand_evidence=st.hand_evidence,
                      hand_context=st.hand_context, occluder_into_hair=st.occluder_into_hair or None,
                      occluder_into_forehead=st.occluder_into_forehead)


def _parser_checkpoint_exists() -> bool:
    from ..parsing.checkpoint import CHECKPOINT_NAME
    from ..resources import checkpoint_path

    return checkpoint_path(CHECKPOINT_NAME).exists()


def _refiner_checkpoint_exists() -> bool:
    from ..landmarks.refiner import checkpoint_exists

    return checkpoint_exists()


register("detect", "mediapipe", _lazy("occgui.detection.mediapipe_detector", "MediaPipeFaceDetector"),
         priority=10, description="MediaPipe BlazeFace short+full range, dlib HOG fallback")
register("landmarks", "mediapipe-refined", _lazy("occgui.landmarks.mediapipe_mesh", "RefinedMeshLandmarks"),
         priority=REFINER_PRIORITY, available=_refiner_checkpoint_exists, settings=RefinerSettings,
         description="MediaPipe Face Mesh + the learned occlusion-aware refiner (checkpoints/landmark_refiner.onnx)")
register("landmarks", "mediapipe", _lazy("occgui.landmarks.mediapipe_mesh", "MediaPipeMeshLandmarks"),
         priority=10, description="MediaPipe Face Mesh (478 points) -> 68 iBUG points")
register("landmarks", "dlib", _lazy("occgui.landmarks.mediapipe_mesh", "DlibLandmarks"),
         priority=1, description="dlib 68-point shape predictor (no dense mesh)")
register("parse", "unet", _unet_parser, priority=10, settings=UNetSettings,
         available=_parser_checkpoint_exists, description="the project's N_alpha U-Net (checkpoints/parsing_unet.onnx)")
register("landmark_map", "polygons", _lazy("occgui.parsing.landmark_map", "LandmarkPolygonMap"), priority=10,
         description="M_beta from polygons joining the 68 landmarks")
register("merge", "algorithm1", _lazy("occgui.parsing.merge", "Algorithm1Merge"), priority=10,
         description="the paper's Algorithm 1 (skin pass, then facial-features pass)")
register("merge", "none", _lazy("occgui.parsing.merge", "AlphaOnlyMerge"), priority=0,
         description="ablation: M_gamma = M_alpha (no merge)")
register("synthesize", "symmetric", _lazy("occgui.synthesis.symmetric", "SymmetricDeocclusion"), priority=10,
         settings=SymmetricSettings,
         description="mirror + template feature synthesis guided by M_gamma, Poisson-blended")
register("synthesize", "fisn", _lazy("occgui.synthesis.fisn_backend", "FISNDeocclusion"),
         priority=FISN_PRIORITY, settings=FISNSettings,
         description="the paper's FISN generator (SFT + SEAN, §3.3) drawing the hole on M_gamma's layout; needs "
                     "checkpoints/fisn_generator.safetensors or --option synthesize.checkpoint=PATH")
register("synthesize", "telea", _lazy("occgui.synthesis.baselines", "TeleaInpaint"), priority=1, settings=TeleaSettings,
         description="baseline: OpenCV Telea inpainting of the M_alpha occluder mask")
register("synthesize", "none", _lazy("occgui.synthesis.baselines", "NoDeocclusion"), priority=0,
         description="ablation: I_out = the photo (no de-occlusion)")
def _torch3d_installed() -> bool:
    """torch and pytorch3d can be imported (checked without importing them)."""
    from importlib.util import find_spec

    return find_spec("torch") is not None and find_spec("pytorch3d") is not None


register("geometry", "mediapipe-mesh", _lazy("occgui.geometry.mesh_builder", "MediaPipeMeshGeometry"),
         priority=10, reads=("load", "detect", "landmarks"),
         description="MediaPipe face mesh topology, subdivided, project UV layout")
register("geometry", "morphable", _lazy("occgui.geometry.morphable_mesh", "MorphableGeometry"), priority=5,
         available=_torch3d_installed, settings=MorphableSettings,
         description="3D morphable model (reduced ICT-FaceKit) fitted to I_out: Eq. 10-16, pytorch3d (paper §3.4-3.5)")
register("texture", "uv-sampler", _lazy("occgui.texture.uv_sampler", "UVTextureBuilder"), priority=10,
         settings=UVSamplerSettings,
         description="UV texture sampled from I_out with visibility and symmetric completion")
