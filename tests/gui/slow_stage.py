"""A test hook for the compute process: makes one stage (or the export) block, the way a huge
photo's decode or a long solve does, so that cancel and kill-9 recovery can be tested in any stage.

Used through ``occgui.gui.compute_host.SETUP_ENV``: a test sets, before its window starts the
compute process::

    OCCGUI_COMPUTE_SETUP=slow_stage:install
    OCCGUI_TEST_SLOW_STAGE=parse            # a stage name, or "export"
    OCCGUI_TEST_SLOW_SECONDS=30             # how long it blocks (default 30 s)
    OCCGUI_TEST_SLOW_MARK=/tmp/x.started    # optional: a file written when the block starts

The block is a plain ``time.sleep`` (a call that never returns to the pipeline's cancel check,
like a C-level decode). ``load`` blocks in the image loader; the other stages in their backend's
stage method (the registered backend is wrapped under its own name); ``export`` blocks after
the first file of the export folder was written (a half-written temporary folder exists then).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

STAGE_METHODS = {"detect": "detect", "parse": "parse", "landmarks": "detect", "landmark_map": "render",
                 "merge": "merge", "synthesize": "synthesize", "geometry": "build", "texture": "build"}


def _block() -> None:
    mark = os.environ.get("OCCGUI_TEST_SLOW_MARK")
    if mark:
        Path(mark).write_text(str(time.time()))
    time.sleep(float(os.environ.get("OCCGUI_TEST_SLOW_SECONDS", "30")))


class _Slow:
    """Delegates to a backend, blocking first in its stage method."""

    def __init__(self, inner, method: str):
        self._inner = inner
        self._method = method

    def __getattr__(self, name):
        value = getattr(self._inner, name)
        if name == self._method:
            def slow(*args, **kwargs):
                _block()
                return value(*args, **kwargs)
            return slow
        return value


def install() -> None:
    """Make ``$OCCGUI_TEST_SLOW_STAGE`` block (called in the compute process at its start)."""
    stage = os.environ.get("OCCGUI_TEST_SLOW_STAGE", "")
    if not stage:
        return
    if stage == "load":
        import occgui.imageio as imageio

        original = imageio.load_image

        def slow_load(*args, **kwargs):
            _block()
            return original(*args, **kwargs)

        imageio.load_image = slow_load
    elif stage == "export":
        import occgui.export as export

        original_write = export.atomic_write_bytes
        written = []

        def slow_write(path, data):
            out = original_write(path, data)
            written.append(path)
            if len(written) == 1:
                _block()
            return out

        export.atomic_write_bytes = slow_write
    else:
        from occgui.pipeline import backends

        entry = backends._entry(stage, None)
        method = STAGE_METHODS[stage]
        backends.register(stage, entry.name, lambda ctx, e=entry: _Slow(e.factory(ctx), method),
                          priority=entry.priority, available=entry.available, description=entry.description,
                          settings=entry.settings)
