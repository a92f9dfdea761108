"""Training of the texture refinement GCN (:mod:`occgui.texture.gcn_refiner`): samples (:mod:`.data`)
and the trainer (:mod:`.train`, ``occgui train texture-gcn``)."""
