"""UV texture of the face (issue point 10): rasterisation and visibility (:mod:`.rasterize`),
sampling through the camera (:mod:`.uv_sampler`) and completion of what the photo does not show
(:mod:`.completion`)."""
