"""Persistent preferences through ``QSettings("occgui", "occgui")``.

Window geometry and layout, the last folder used in file dialogs, recent photos, the device
preference, auto re-run and the 3D display mode. Tests point QSettings at a temporary folder
(:func:`use_settings_folder`) so nothing is written to the user's home.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from ..device import CHOICES

ORGANIZATION = APPLICATION = "occgui"
MAX_RECENT = 10


def use_settings_folder(folder) -> None:
    """Store every QSettings of this process (INI format) under ``folder`` (tests, self-test)."""
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(folder))
        QSettings.setPath(QSettings.Format.NativeFormat, scope, str(folder))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)


class AppSettings:
    """Typed access to the stored preferences."""

    def __init__(self):
        self.qs = QSettings(ORGANIZATION, APPLICATION)

    # -- window ------------------------------------------------------------------------------
    def geometry(self) -> QByteArray | None:
        v = self.qs.value("window/geometry")
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def set_geometry(self, data: QByteArray) -> None:
        self.qs.setValue("window/geometry", data)

    def splitter_state(self, name: str) -> QByteArray | None:
        v = self.qs.value(f"window/splitter_{name}")
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def set_splitter_state(self, name: str, data: QByteArray) -> None:
        self.qs.setValue(f"window/splitter_{name}", data)

    # -- files -------------------------------------------------------------------------------
    def last_folder(self) -> str:
        v = str(self.qs.value("files/last_folder", "") or "")
        return v if v and Path(v).is_dir() else str(Path.home())

    def set_last_folder(self, folder) -> None:
        self.qs.setValue("files/last_folder", str(folder))

    def recent_files(self) -> list[str]:
        v = self.qs.value("files/recent", [])
        if isinstance(v, str):
            v = [v] if v else []
        return [str(p) for p in (v or [])][:MAX_RECENT]

    def add_recent_file(self, path) -> list[str]:
        p = str(Path(path).resolve())
        files = [p] + [f for f in self.recent_files() if f != p]
        self.qs.setValue("files/recent", files[:MAX_RECENT])
        return files[:MAX_RECENT]

    def remove_recent_file(self, path) -> None:
        self.qs.setValue("files/recent", [f for f in self.recent_files() if f != str(path)])

    def clear_recent_files(self) -> None:
        self.qs.setValue("files/recent", [])

    # -- preferences -------------------------------------------------------------------------
    def device(self) -> str:
        v = str(self.qs.value("compute/device", "auto") or "auto")
        return v if v in CHOICES else "auto"

    def set_device(self, device: str) -> None:
        self.qs.setValue("compute/device", device)

    def auto_rerun(self) -> bool:
        return str(self.qs.value("compute/auto_rerun", "false")).lower() in ("true", "1")

    def set_auto_rerun(self, on: bool) -> None:
        self.qs.setValue("compute/auto_rerun", "true" if on else "false")

    def hand_evidence(self) -> bool:
        """The stored choice; the parse setting's default (on) when none is stored."""
        from ..parsing.settings import UNetSettings

        v = self.qs.value("compute/hand_evidence", None)
        return UNetSettings().hand_evidence if v is None else str(v).lower() in ("true", "1")

    def set_hand_evidence(self, on: bool) -> None:
        self.qs.setValue("compute/hand_evidence", "true" if on else "false")

    def forehead_growth(self) -> bool:
        """The stored choice; the parse setting's default (on) when none is stored."""
        from ..parsing.settings import UNetSettings

        v = self.qs.value("compute/forehead_growth", None)
        return UNetSettings().occluder_into_forehead if v is None else str(v).lower() in ("true", "1")

    def set_forehead_growth(self, on: bool) -> None:
        self.qs.setValue("compute/forehead_growth", "true" if on else "false")

    def mesh_mode(self) -> str:
        v = str(self.qs.value("view/mesh_mode", "texture") or "texture")
        return v if v in ("texture", "shaded", "wireframe") else "texture"

    def set_mesh_mode(self, mode: str) -> None:
        self.qs.setValue("view/mesh_mode", mode)

    def sync(self) -> None:
        self.qs.sync()
