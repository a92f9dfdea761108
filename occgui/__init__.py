"""occgui: occlusion-robust 3D face reconstruction from one photo.

Implements "Generative Face Parsing Map Guided 3D Face Reconstruction Under Occluded Scenes"
(Zhao & Qi): landmarks -> parsing maps (M_alpha, M_beta, M_gamma, Algorithm 1) -> de-occluded
face I_out -> textured 3D mesh. The core (everything but ``occgui.gui``) imports no Qt.
"""
__version__ = "0.1.0"
