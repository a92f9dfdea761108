"""Face geometry (issue point 9): the MediaPipe face-mesh topology derived from the installed
package (:mod:`.topology`), the project's mirror-symmetric UV layout (:mod:`.uv_layout`), the mesh
in the photo's camera frame with subdivision and landmark-driven deformation (:mod:`.mesh_builder`,
:mod:`.deform`)."""
