"""The occgui desktop application (PySide6): the only package of occgui that imports Qt.

Structure (model / views / worker, as in napari; see ``docs/gui.md``):

* :mod:`.document` -- the Qt-free document: photo, stage results, edited landmarks, exact staleness.
* :mod:`.session` -- the controller: document + undo stack + worker thread, emitting Qt signals.
* :mod:`.worker` -- :class:`~.worker.PipelineWorker`, a QObject living in a QThread that drives
  the long-lived pipeline through a host of :mod:`.compute_host` (Qt-free): a child process by
  default (no stage can hold the interpreter lock against the GUI thread), or the worker thread.
* :mod:`.view_data` -- Qt-free display preparation (colourised maps, the VTK mesh), done in the
  worker thread so that the GUI thread only hands ready objects to the views.
* views: :mod:`.landmark_editor`, :mod:`.maps_panel`, :mod:`.deoccluded_view`, :mod:`.mesh_view`,
  :mod:`.image_canvas`, :mod:`.stage_strip`, :mod:`.status_panel`, :mod:`.message_banner`,
  :mod:`.pane`, :mod:`.theme`.
* :mod:`.main_window` assembles them; :mod:`.app` starts the application; :mod:`.self_test`
  drives the real window end to end (``occgui --self-test``); :mod:`occgui.frozen_entry` is the
  PyInstaller entry (``build_app.spec``).
"""
