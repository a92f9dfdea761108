"""The occgui desktop application (PySide6): the only package of occgui that imports Qt.

Structure (model / views / worker, as in napari):

* :mod:`.document` -- the Qt-free document: photo, stage results, edited landmarks, staleness.
* :mod:`.view_data` -- Qt-free preparation of display data (colourised maps, the VTK mesh),
  done in the worker thread so that the GUI thread only hands ready arrays to the views.
* :mod:`.worker` -- :class:`~.worker.PipelineWorker`, a QObject living in a QThread that owns
  the long-lived :class:`~occgui.pipeline.runner.Pipeline` (its cache makes re-runs cheap).
* :mod:`.session` -- the controller: document + worker + undo stack, emitting Qt signals.
* views: :mod:`.landmark_editor`, :mod:`.image_pane`, :mod:`.maps_panel`, :mod:`.deoccluded_view`,
  :mod:`.mesh_view`, :mod:`.stage_strip`, :mod:`.status_bar`, :mod:`.message_banner`.
* :mod:`.main_window` assembles them; :mod:`.app` starts the application; :mod:`.self_test`
  drives the real window end to end (``occgui --self-test``).
"""
