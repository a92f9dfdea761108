"""Display data prepared from stage results, free of Qt so that it runs in the worker thread.

The GUI thread must never stall for long (the heartbeat test allows 100 ms), so everything
array-heavy is done here, next to the pipeline: colourising the parsing maps, building the
VTK mesh with normals and texture coordinates, wrapping the texture. The views then only hand
these ready objects to Qt / VTK.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2  # imported here, at start-up: a first import inside the worker would hold the GIL
import numpy as np

from .. import labels as L
from ..pipeline.stages import stage as stage_spec
from ..results import FaceMesh, ParsingMap, Synthesis, Texture


@dataclass(frozen=True)
class MapDisplay:
    """A parsing map ready to show: colour image, transparent-background overlay, raw labels."""

    kind: str                 # alpha | beta | gamma
    rgb: np.ndarray           # SxSx3 uint8, palette colours
    overlay: np.ndarray       # SxSx4 uint8, background fully transparent
    labels: np.ndarray        # SxS uint8 (hover read-out)
    from_crop: np.ndarray     # 2x3 affine crop px -> working px (to place the overlay on the photo)


@dataclass(frozen=True)
class SynthesisDisplay:
    """I_out and the photo crop it replaces, for the before/after comparison."""

    image: np.ndarray         # SxSx3 uint8, I_out
    photo_crop: np.ndarray    # SxSx3 uint8, I_fac
    filled: np.ndarray        # SxS bool, re-synthesized pixels


@dataclass(frozen=True)
class MeshDisplay:
    """The face mesh as a pyvista PolyData (normals and texture coordinates set), with its
    texture once stage ``texture`` has run."""

    polydata: object          # pyvista.PolyData
    texture: object | None    # pyvista.Texture or None
    n_vertices: int
    n_faces: int


def map_display(parsing_map, crop) -> MapDisplay:
    """Colourise a ``ParsingMap`` (crop pixels) for the map panes and the photo overlay."""
    labels = np.ascontiguousarray(parsing_map.labels)
    rgb = np.ascontiguousarray(L.colorize(labels))
    alpha = np.where(labels == L.BACKGROUND, 0, 255).astype(np.uint8)
    overlay = np.ascontiguousarray(np.dstack([rgb, alpha]))
    return MapDisplay(parsing_map.kind, rgb, overlay, labels, np.array(crop.from_crop, dtype=np.float64))


#: RGBA of the occluder overlay on the photo: the parser's occluder kept, painted, erased.
OCCLUDER_KEPT_RGBA = (255, 150, 0, 190)
OCCLUDER_ADDED_RGBA = (255, 40, 200, 220)
OCCLUDER_ERASED_RGBA = (0, 200, 255, 110)


def occluder_overlay(alpha: np.ndarray, edit=None) -> np.ndarray:
    """SxSx4 uint8: M_alpha's occluder as painted -- the parser's pixels kept (orange), the
    painted ones (magenta) and the parser's pixels erased (faint cyan); transparent elsewhere."""
    a = np.asarray(alpha)
    rgba = np.zeros((*a.shape, 4), np.uint8)
    parser = a == L.OCCLUDER
    if edit is None:
        rgba[parser] = OCCLUDER_KEPT_RGBA
        return rgba
    rgba[parser & ~edit.erased] = OCCLUDER_KEPT_RGBA
    rgba[edit.erased & parser] = OCCLUDER_ERASED_RGBA
    rgba[edit.added] = OCCLUDER_ADDED_RGBA
    return rgba


def synthesis_display(synthesis, crop) -> SynthesisDisplay:
    return SynthesisDisplay(np.ascontiguousarray(synthesis.image), np.ascontiguousarray(crop.image),
                            np.asarray(synthesis.filled, dtype=bool))


def mesh_polydata(face_mesh):
    """``FaceMesh`` -> ``pyvista.PolyData`` with point normals and active texture coordinates."""
    import pyvista as pv

    vertices = np.asarray(face_mesh.vertices, dtype=np.float64)
    faces = np.asarray(face_mesh.faces, dtype=np.int64)
    poly = pv.PolyData.from_regular_faces(vertices, faces)
    poly.active_texture_coordinates = np.asarray(face_mesh.uv, dtype=np.float32)
    poly = poly.compute_normals(point_normals=True, cell_normals=False, split_vertices=False,
                                consistent_normals=False, auto_orient_normals=False)
    return poly


#: Side of the texture shown in the 3D view. The exported texture keeps its full size; on screen
#: the face spans a few hundred pixels, and an area-downsampled 512 texture both avoids the
#: shimmer of minifying a 1024 one without mipmaps and halves the frame time in software GL.
DISPLAY_TEXTURE_SIDE = 512


def mesh_texture(texture, max_side: int = DISPLAY_TEXTURE_SIDE):
    """``Texture`` -> ``pyvista.Texture`` (row 0 of the image is the top, v = 1, as in OBJ),
    area-downsampled to at most ``max_side``."""
    import pyvista as pv

    img = np.ascontiguousarray(texture.image)
    h, w = img.shape[:2]
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        img = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    tex = pv.Texture(np.ascontiguousarray(img))
    tex.interpolate = True
    tex.mipmap = False      # mipmaps are built on the CPU with software GL: hundreds of ms
    return tex


def mesh_display(face_mesh, texture=None, polydata=None) -> MeshDisplay:
    """The mesh (``polydata`` when it was already built from ``face_mesh``) and its texture."""
    poly = polydata if polydata is not None else mesh_polydata(face_mesh)
    tex = mesh_texture(texture) if texture is not None else None
    return MeshDisplay(poly, tex, int(poly.n_points), int(poly.n_cells))


def prepare(stage: str, value, values: dict, displays: dict | None = None) -> object | None:
    """Display data of one stage result; ``values`` holds the run's other results so far and
    ``displays`` their display data (stage name -> object). None for stages shown as they are.
    What is shown follows the result type the stage table gives the stage."""
    kind = stage_spec(stage).result
    if kind is ParsingMap:
        return map_display(value, values["detect"])
    if kind is Synthesis:
        return synthesis_display(value, values["detect"])
    if kind is FaceMesh:
        return mesh_display(value)
    if kind is Texture:
        mesh = stage_spec(stage).inputs[-1]          # the geometry stage the texture is mapped onto
        geometry = (displays or {}).get(mesh)
        return mesh_display(values[mesh], value, geometry.polydata if geometry is not None else None)
    return None
