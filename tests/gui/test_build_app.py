"""Opt-in (``-m slow``): build the PyInstaller one-folder app and run its ``--self-test``.

Takes several minutes and a few GB of disk; not part of the default run.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.gui]
REPO = Path(__file__).resolve().parents[2]


def test_pyinstaller_app_builds_and_passes_its_self_test(gui_settings_dir, tmp_path):
    if shutil.which("pyinstaller") is None and not (Path(sys.executable).parent / "pyinstaller").exists():
        pytest.skip("PyInstaller is not installed (pip install -e '.[build]')")
    pyinstaller = shutil.which("pyinstaller") or str(Path(sys.executable).parent / "pyinstaller")
    dist, work = tmp_path / "dist", tmp_path / "build"
    build = subprocess.run([pyinstaller, "--noconfirm", "--clean", "--distpath", str(dist), "--workpath", str(work),
                            str(REPO / "build_app.spec")], cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert build.returncode == 0, (build.stdout + build.stderr)[-4000:]
    app = dist / "occgui" / "occgui"
    assert app.exists(), f"no executable at {app}"
    internal = dist / "occgui" / "_internal"
    assert (internal / "resources" / "samples" / "astronaut_hand.png").exists()
    assert (internal / "checkpoints").is_dir()
    env = dict(os.environ)
    env["HOME"] = str(tmp_path / "home")
    env.pop("PYTHONPATH", None)
    run = subprocess.run([str(app), "--self-test"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert "self-test passed" in run.stdout
