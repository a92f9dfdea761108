"""Connectivity of the face mesh: triangles derived from the installed MediaPipe package's edges.

MediaPipe ships its 468-vertex face mesh only as an edge list (``FACEMESH_TESSELATION``, exposed
by :func:`occgui.mediapipe_models.tessellation_edges`). The triangles are derived here at run time:

1. every 3-clique of the edge graph is a candidate triangle;
2. a 3-clique whose three edges each belong to more than two cliques is a *separating* triangle
   (it encloses a vertex, e.g. a K4 where one vertex lies inside the other three) and is not a
   face; such cliques are removed until every edge borders at most two triangles;
3. the triangles are oriented consistently by a breadth-first walk over shared edges.

With the installed package (mediapipe 0.10) this gives 852 triangles, 1322 edges, and a
connected, orientable 2-manifold with Euler characteristic -2: a disk (outer boundary of 36
vertices) with three holes -- the two eyes (16-vertex loops) and the mouth (20-vertex loop).
:func:`face_topology` fills the three holes (ear clipping in the project's UV layout, see
:mod:`occgui.geometry.uv_layout`) so the face is one closed disk of 898 triangles whose eyes and
mouth show the photo's texture, and fixes the global orientation so that triangles are
counter-clockwise in UV (u right, v up), which is "outward = towards the viewer" for a face seen
from the front.

:func:`subdivided_topology` adds midpoint (1-to-4) subdivision levels: the connectivity and the
(linearly interpolated) UV coordinates are fixed for every face, so they are derived once and
cached; :mod:`occgui.geometry.mesh_builder` positions the new vertices.
"""
from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

NUM_MESH_VERTICES = 468  # MediaPipe's face mesh without the 10 iris points


class TopologyError(ValueError):
    """The edge list does not describe an orientable triangle surface."""


# --------------------------------------------------------------------------------------------
# Derivation from an edge list
# --------------------------------------------------------------------------------------------
def triangles_from_edges(edges: np.ndarray, num_vertices: int) -> np.ndarray:
    """The faces of the triangulated surface whose edge list is ``edges`` (unoriented, sorted).

    Returns an ``(F, 3)`` int64 array of vertex ids (each row ascending), without separating
    3-cliques (see the module docstring). Raises :class:`TopologyError` when some edge still
    borders more than two triangles.
    """
    und = {tuple(sorted(map(int, e))) for e in np.asarray(edges) if int(e[0]) != int(e[1])}
    adj: list[set[int]] = [set() for _ in range(num_vertices)]
    for a, b in und:
        adj[a].add(b)
        adj[b].add(a)
    cliques = {tuple(sorted((a, b, c))) for a, b in und for c in adj[a] & adj[b]}
    count: Counter = Counter()
    for t in cliques:
        count.update(_tri_edges(t))
    while True:
        separating = [t for t in cliques if all(count[e] > 2 for e in _tri_edges(t))]
        if not separating:
            break
        t = min(separating)  # remove one at a time: removing it lowers its edges' counts
        cliques.discard(t)
        count.subtract(_tri_edges(t))
    bad = [e for e, n in count.items() if n > 2]
    if bad:
        raise TopologyError(f"{len(bad)} edge(s) border more than two triangles, e.g. {bad[0]}")
    return np.array(sorted(cliques), dtype=np.int64).reshape(-1, 3)


def _tri_edges(t) -> tuple[tuple[int, int], ...]:
    a, b, c = t
    return (min(a, b), max(a, b)), (min(b, c), max(b, c)), (min(a, c), max(a, c))


def orient_consistently(faces: np.ndarray) -> np.ndarray:
    """Reorder each triangle's vertices so that neighbours traverse their shared edge oppositely.

    A breadth-first walk from the first face of every connected component; raises
    :class:`TopologyError` for a non-orientable or non-manifold surface.
    """
    faces = np.array(faces, dtype=np.int64, copy=True)
    by_edge: dict[tuple[int, int], list[int]] = defaultdict(list)
    for fi, t in enumerate(faces):
        for e in _tri_edges(t):
            by_edge[e].append(fi)
    done = np.zeros(len(faces), dtype=bool)
    for start in range(len(faces)):
        if done[start]:
            continue
        done[start] = True
        queue = deque([start])
        while queue:
            fi = queue.popleft()
            a, b, c = faces[fi]
            for u, v in ((a, b), (b, c), (c, a)):
                for fj in by_edge[(min(u, v), max(u, v))]:
                    if fj == fi:
                        continue
                    directed = _directed_edges(faces[fj])
                    if done[fj]:
                        if (u, v) in directed:
                            raise TopologyError("the surface is not orientable")
                        continue
                    if (u, v) in directed:  # same direction as in fi: flip fj
                        faces[fj] = faces[fj][[0, 2, 1]]
                    done[fj] = True
                    queue.append(fj)
    return faces


def _directed_edges(t) -> tuple[tuple[int, int], ...]:
    a, b, c = (int(x) for x in t)
    return (a, b), (b, c), (c, a)


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Ordered boundary loops of a consistently oriented manifold triangle mesh.

    Each loop follows the faces' orientation (the surface lies to the left of a
    counter-clockwise triangle's edges). Loops are sorted longest first.
    """
    directed = Counter()
    for t in faces:
        directed.update(_directed_edges(t))
    nxt: dict[int, int] = {}
    for (u, v) in directed:
        if (v, u) not in directed:  # a boundary half-edge u -> v
            if u in nxt:
                raise TopologyError(f"vertex {u} has two outgoing boundary edges (non-manifold)")
            nxt[u] = v
    loops: list[np.ndarray] = []
    seen: set[int] = set()
    for s in sorted(nxt):
        if s in seen:
            continue
        loop = [s]
        seen.add(s)
        cur = nxt[s]
        while cur != s:
            if cur in seen or cur not in nxt:
                raise TopologyError("boundary edges do not form simple loops")
            loop.append(cur)
            seen.add(cur)
            cur = nxt[cur]
        loops.append(np.array(loop, dtype=np.int64))
    return sorted(loops, key=lambda l: -len(l))


def check_manifold_disk(faces: np.ndarray, num_vertices: int) -> dict:
    """Facts about the surface; raises :class:`TopologyError` unless it is one oriented disk.

    Checks: every edge borders one or two triangles, neighbours are oriented consistently,
    every vertex's triangles form a single fan, one connected component, Euler characteristic 1
    and exactly one boundary loop.
    """
    directed = Counter()
    for t in faces:
        directed.update(_directed_edges(t))
    if any(n > 1 for n in directed.values()):
        raise TopologyError("inconsistent orientation or an edge used twice in one direction")
    und = {(min(u, v), max(u, v)) for u, v in directed}
    loops = boundary_loops(faces)
    used = np.unique(faces)
    # single fan per vertex: the link of an interior vertex is one cycle, of a boundary vertex one path
    star: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for a, b, c in faces:
        star[int(a)].append((int(b), int(c)))
        star[int(b)].append((int(c), int(a)))
        star[int(c)].append((int(a), int(b)))
    for v, links in star.items():
        succ = dict(links)
        if len(succ) != len(links):
            raise TopologyError(f"vertex {v} is non-manifold")
        starts = set(succ) - set(succ.values())
        if len(starts) > 1:
            raise TopologyError(f"the triangles around vertex {v} do not form a single fan")
        start = next(iter(starts)) if starts else links[0][0]
        cur, visited = start, set()
        while cur in succ and cur not in visited:
            visited.add(cur)
            cur = succ[cur]
        if len(visited) != len(links) or (not starts and cur != start):
            raise TopologyError(f"the triangles around vertex {v} do not form a single fan")
    components = _count_components(faces, num_vertices)
    euler = len(used) - len(und) + len(faces)
    facts = {"vertices": int(len(used)), "edges": len(und), "faces": int(len(faces)),
             "boundary_loops": [int(len(l)) for l in loops], "euler": int(euler), "components": components}
    if components != 1 or euler != 1 or len(loops) != 1:
        raise TopologyError(f"not a single disk: {facts}")
    return facts


def _count_components(faces: np.ndarray, num_vertices: int) -> int:
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces)
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    g = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_vertices, num_vertices))
    used = np.unique(f)
    n, lab = connected_components(g, directed=False)
    return int(len(np.unique(lab[used])))


def signed_areas(faces: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Signed 2D areas of the triangles (positive = counter-clockwise in a y-up frame)."""
    p = np.asarray(xy, dtype=np.float64)[np.asarray(faces)]
    d1, d2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    return 0.5 * (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])


def triangulate_loop(loop: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Triangulate the simple polygon ``xy[loop]`` by ear clipping (best-shaped ear first).

    Returns counter-clockwise triangles (in a y-up frame) whatever the loop's direction.
    """
    idx = [int(i) for i in loop]
    pts = {i: np.asarray(xy[i], dtype=np.float64) for i in idx}
    area = sum(pts[idx[k]][0] * pts[idx[(k + 1) % len(idx)]][1] - pts[idx[(k + 1) % len(idx)]][0] * pts[idx[k]][1]
               for k in range(len(idx)))
    if area < 0:
        idx.reverse()
    tris: list[tuple[int, int, int]] = []
    while len(idx) > 3:
        best, best_q = None, -np.inf
        n = len(idx)
        for k in range(n):
            a, b, c = idx[k - 1], idx[k], idx[(k + 1) % n]
            pa, pb, pc = pts[a], pts[b], pts[c]
            cross = (pb[0] - pa[0]) * (pc[1] - pa[1]) - (pb[1] - pa[1]) * (pc[0] - pa[0])
            if cross <= 1e-12:
                continue  # reflex or degenerate corner
            if any(_inside(pts[o], pa, pb, pc) for o in idx if o not in (a, b, c)):
                continue
            q = _min_angle(pa, pb, pc)
            if q > best_q:
                best, best_q = k, q
        if best is None:
            raise TopologyError("could not triangulate a hole (self-intersecting loop)")
        k = best
        tris.append((idx[k - 1], idx[k], idx[(k + 1) % n]))
        del idx[k]
    tris.append((idx[0], idx[1], idx[2]))
    return np.array(tris, dtype=np.int64)


def _inside(p, a, b, c) -> bool:
    def cr(o, u, v):
        return (u[0] - o[0]) * (v[1] - o[1]) - (u[1] - o[1]) * (v[0] - o[0])
    return cr(a, b, p) >= 0 and cr(b, c, p) >= 0 and cr(c, a, p) >= 0


def _min_angle(a, b, c) -> float:
    angles = []
    for p, q, r in ((a, b, c), (b, c, a), (c, a, b)):
        u, v = q - p, r - p
        cos = np.dot(u, v) / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-18)
        angles.append(np.arccos(np.clip(cos, -1.0, 1.0)))
    return float(min(angles))


# --------------------------------------------------------------------------------------------
# The project's face topology
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceTopology:
    """The 468-vertex face mesh: oriented triangles (tessellation + hole fills) and loops."""

    faces: np.ndarray              # (F,3) int64, counter-clockwise in UV = outward towards the viewer
    num_tessellation_faces: int    # the first rows of ``faces`` come from the package's edges
    boundary: np.ndarray           # outer boundary loop (vertex ids)
    holes: tuple[np.ndarray, ...]  # the loops that were filled: two eyes and the mouth (ordered)
    num_vertices: int = NUM_MESH_VERTICES

    @property
    def eye_loops(self) -> tuple[np.ndarray, np.ndarray]:
        """The two 16-vertex eye loops (in no particular left/right order)."""
        eyes = [h for h in self.holes if len(h) == 16]
        return eyes[0], eyes[1]


def tessellation_triangles() -> np.ndarray:
    """Consistently oriented triangles of the installed package's tessellation (global sign arbitrary)."""
    from .. import mediapipe_models as mpm

    return orient_consistently(triangles_from_edges(mpm.tessellation_edges(), NUM_MESH_VERTICES))


def fill_holes(faces: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Orient ``faces`` counter-clockwise in ``xy`` and fill every boundary loop but the longest.

    Returns ``(faces with fills appended, outer boundary loop, filled loops)``.
    """
    faces = np.asarray(faces, dtype=np.int64)
    if signed_areas(faces, xy).sum() < 0:
        faces = faces[:, [0, 2, 1]]
    loops = boundary_loops(faces)
    fills = [triangulate_loop(l, xy) for l in loops[1:]]
    return np.vstack([faces, *fills]), loops[0], tuple(loops[1:])


@lru_cache(maxsize=None)
def face_topology() -> FaceTopology:
    """The project's face topology (cached): derived triangles + hole fills, oriented by the UV layout."""
    from .uv_layout import load_uv_layout

    layout = load_uv_layout()
    tess = tessellation_triangles()
    faces, outer, holes = fill_holes(tess, layout.uv)
    check_manifold_disk(faces, NUM_MESH_VERTICES)
    if (signed_areas(faces, layout.uv) <= 0).any():
        raise TopologyError("the UV layout has flipped triangles for this package's tessellation; "
                            "rebuild it with tools/build_uv_layout.py")
    for a in (faces, outer, *holes):
        a.setflags(write=False)
    return FaceTopology(faces=faces, num_tessellation_faces=len(tess), boundary=outer, holes=holes)


# --------------------------------------------------------------------------------------------
# Midpoint subdivision
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubdivisionStep:
    """One 1-to-4 midpoint subdivision of a mesh with ``num_vertices`` vertices and ``faces``.

    New vertex ``num_vertices + i`` is the midpoint of ``edges[i]``; ``incidence`` (V x F, sparse)
    sums per-face quantities onto the input level's vertices (used for vertex normals).
    """

    faces: np.ndarray        # input level's faces
    num_vertices: int        # input level's vertex count
    edges: np.ndarray        # (E,2) unique edges of the input level
    incidence: sp.csr_matrix
    faces_out: np.ndarray    # (4F,3) the output level's faces (orientation preserved)


def subdivide_connectivity(faces: np.ndarray, num_vertices: int) -> SubdivisionStep:
    """Connectivity of one midpoint subdivision step (see :class:`SubdivisionStep`)."""
    f = np.asarray(faces, dtype=np.int64)
    half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])  # edge k of face i at row k*F+i
    key = np.sort(half, axis=1)
    edges, inverse = np.unique(key, axis=0, return_inverse=True)
    inverse = inverse.reshape(3, -1) + num_vertices
    ab, bc, ca = inverse
    a, b, c = f[:, 0], f[:, 1], f[:, 2]
    out = np.concatenate([np.stack([a, ab, ca], 1), np.stack([b, bc, ab], 1),
                          np.stack([c, ca, bc], 1), np.stack([ab, bc, ca], 1)])
    rows = f.reshape(-1)
    cols = np.repeat(np.arange(len(f)), 3)
    inc = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_vertices, len(f)))
    return SubdivisionStep(faces=f, num_vertices=num_vertices, edges=edges, incidence=inc, faces_out=out)


@dataclass(frozen=True)
class DenseTopology:
    """The face topology after ``levels`` midpoint subdivisions, with interpolated UVs."""

    steps: tuple[SubdivisionStep, ...]
    faces: np.ndarray        # (F,3) final faces
    uv: np.ndarray           # (N,2) final per-vertex UV (linear along edges)
    num_vertices: int
    coarse: FaceTopology

    @property
    def levels(self) -> int:
        return len(self.steps)


@lru_cache(maxsize=None)
def subdivided_topology(levels: int = 2) -> DenseTopology:
    """:func:`face_topology` after ``levels`` midpoint subdivision steps (cached)."""
    from .uv_layout import load_uv_layout

    coarse = face_topology()
    uv = load_uv_layout().uv
    faces, n = coarse.faces, coarse.num_vertices
    steps = []
    for _ in range(levels):
        step = subdivide_connectivity(faces, n)
        uv = np.vstack([uv, 0.5 * (uv[step.edges[:, 0]] + uv[step.edges[:, 1]])])
        steps.append(step)
        faces, n = step.faces_out, n + len(step.edges)
    faces.setflags(write=False)
    uv.setflags(write=False)
    return DenseTopology(steps=tuple(steps), faces=faces, uv=uv, num_vertices=n, coarse=coarse)
