"""``occgui --self-test`` through the real entry point (``python -m occgui``), under the display."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui
REPO = Path(__file__).resolve().parents[2]


def test_self_test_passes(gui_settings_dir, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["HOME"] = str(tmp_path)                    # nothing may leak into the real home
    proc = subprocess.run([sys.executable, "-m", "occgui", "--self-test"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "self-test passed" in proc.stdout
    assert not any(tmp_path.joinpath(".config").glob("**/occgui*")), "self-test wrote user settings"
