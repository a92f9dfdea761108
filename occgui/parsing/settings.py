"""Typed settings of the ``parse`` backends (``--option parse.FIELD=VALUE``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..settings import setting


@dataclass(frozen=True)
class UNetSettings:
    """Settings of the N_alpha U-Net backend (:class:`occgui.parsing.unet_parser.UNetParser`)."""

    flip: bool = setting(False, "mirror test-time augmentation: average the logits of the crop and of its mirror "
                                "image, left/right classes swapped (2x the time for +0.007 occluder IoU on "
                                "held-out identities)")
    checkpoint: str = setting("", "parsing checkpoint to load (.onnx); empty: the shipped "
                                  "checkpoints/parsing_unet.onnx", "path")
    occluder_threshold: float = setting(0.0, "occluder probability (softmax) from which a pixel is occluder "
                                             "rather than its arg-max class; 0: the checkpoint's calibrated "
                                             "value (its header's occluder_threshold), or the arg-max when it "
                                             "has none")
    occluder_into_hair: float = setting(0.0, "grow the occluder regions found into the neighbouring pixels above "
                                             "the brows that the network calls hair and whose occluder "
                                             "probability reaches this (hats it half sees as hair); 0 = off")
    hand_evidence: bool = setting(True, "mark the hands MediaPipe's hand-landmark model finds in the crop as "
                                        "occluder (occgui.parsing.hand_evidence; about 45 ms more on the "
                                        "2-core CPU when a hand is found)")
    hand_context: bool = setting(True, "with hand_evidence: also look for hands in a view of the photo twice "
                                       "as wide around the face (a hand whose palm is outside the crop), kept "
                                       "when a fingertip touches the face (this and occluder_into_forehead "
                                       "together: about 55 ms more on the 2-core CPU when a hand is found)")
    occluder_into_forehead: bool = setting(True, "grow the occluder found through the hair that covers the forehead "
                                                  "(above the brows, from temple to temple up to the estimated "
                                                  "hairline, from MediaPipe's face mesh of the crop), from the "
                                                  "occluder's parts above the brows: a hat the network half "
                                                  "calls hair (occgui.parsing.forehead)")
