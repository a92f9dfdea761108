"""Shared fixtures. Tests that need ../shared/data skip with a clear reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# triton (imported by torch._dynamo, which torch's optimizers pull in) bundles its own LLVM and
# segfaults when it is imported after Mesa's llvmpipe (also LLVM) was loaded by a GL context, as
# the GUI and rendering tests do under Xvfb. Importing it first, once, avoids the clash.
import torch._dynamo  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("OCCGUI_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or $OCCGUI_SHARED_DATA); skips the test when it is absent."""
    if not (SHARED_DATA / "faces" / "lfw").is_dir():
        pytest.skip(f"needs the shared data folder ({SHARED_DATA} is absent; it exists in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def lfw_dir(shared_data) -> Path:
    return shared_data / "faces" / "lfw" / "lfw-deepfunneled"


@pytest.fixture(scope="session")
def occluders_dir(shared_data) -> Path:
    return shared_data / "occluders"


@pytest.fixture(scope="session")
def sample_photo() -> Path:
    from occgui.resources import sample_photo

    p = sample_photo()
    assert p.exists(), f"bundled sample photo missing: {p}"
    return p
