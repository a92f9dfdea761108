"""The dark-neutral look: Fusion style, a grey palette, one accent colour, a small stylesheet.

Colours used by several views (stage states, staleness, messages) live here so that the whole
window speaks one visual language.
"""
from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

WINDOW = "#1f2124"
BASE = "#17181b"
PANEL = "#26282c"
HEADER = "#2d3035"
BORDER = "#3a3d43"
TEXT = "#dfe1e5"
TEXT_DIM = "#9aa0a8"
ACCENT = "#4f9dff"
VIEW_BG = "#121315"

#: Stage-state colours (stage strip, badges).
STATE_COLORS = {
    "pending": "#4a4e55",
    "running": ACCENT,
    "done": "#3fae6a",
    "cached": "#2f8f8f",
    "stale": "#e0a030",
    "failed": "#e0524f",
    "cancelled": "#8a8f98",
}
STALE = STATE_COLORS["stale"]
ERROR = STATE_COLORS["failed"]

#: Landmark editor colours.
HANDLE = "#ffd24a"
HANDLE_EDITED = "#ff7ad9"
CONTOUR = (120, 220, 255, 190)
HOVER = "#ffffff"

STYLESHEET = f"""
QMainWindow, QDialog {{ background: {WINDOW}; }}
QToolTip {{ color: {TEXT}; background: {HEADER}; border: 1px solid {BORDER}; padding: 4px; }}
QMenuBar {{ background: {WINDOW}; }}
QMenuBar::item:selected {{ background: {HEADER}; }}
QMenu {{ background: {PANEL}; border: 1px solid {BORDER}; }}
QMenu::item:selected {{ background: {ACCENT}; color: white; }}
QStatusBar {{ background: {BASE}; border-top: 1px solid {BORDER}; }}
QStatusBar QLabel {{ color: {TEXT_DIM}; padding: 0 6px; }}
QSplitter::handle {{ background: {WINDOW}; }}
QSplitter::handle:hover {{ background: {BORDER}; }}
QFrame#Pane {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px; }}
QFrame#PaneHeader {{ background: {HEADER}; border: none; border-top-left-radius: 6px;
                     border-top-right-radius: 6px; }}
QLabel#PaneTitle {{ color: {TEXT}; font-weight: 600; }}
QLabel#PaneSubtitle {{ color: {TEXT_DIM}; }}
QToolButton {{ color: {TEXT}; background: transparent; border: 1px solid transparent; border-radius: 4px;
               padding: 3px 7px; }}
QToolButton:hover {{ background: #383b41; border-color: {BORDER}; }}
QToolButton:checked {{ background: #2b4a70; border-color: {ACCENT}; }}
QToolButton:disabled {{ color: #666b73; }}
QPushButton {{ color: {TEXT}; background: #33363c; border: 1px solid {BORDER}; border-radius: 4px;
               padding: 3px 12px; }}
QPushButton:hover {{ background: #3d4047; }}
QPushButton:disabled {{ color: #666b73; background: #2a2c30; }}
QPushButton#Primary {{ background: #2d5f99; border-color: {ACCENT}; color: white; }}
QPushButton#Primary:hover {{ background: #3570b5; }}
QPushButton#Primary:disabled {{ background: #2a2c30; border-color: {BORDER}; color: #666b73; }}
QProgressBar {{ background: {BASE}; border: 1px solid {BORDER}; border-radius: 4px; text-align: center;
                color: {TEXT}; height: 14px; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 3px; }}
QSlider::groove:horizontal {{ height: 4px; background: {BORDER}; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: {TEXT}; width: 12px; margin: -5px 0; border-radius: 6px; }}
QSlider::sub-page:horizontal {{ background: {ACCENT}; border-radius: 2px; }}
QFrame#Banner {{ border-radius: 6px; }}
QLabel#BannerText {{ color: white; }}
QLabel#LegendName {{ color: {TEXT}; }}
QComboBox {{ background: #33363c; border: 1px solid {BORDER}; border-radius: 4px; padding: 2px 8px; }}
"""


def apply_dark_theme(app: QApplication) -> None:
    """Fusion style with a dark-neutral palette and the stylesheet above."""
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: WINDOW, QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BASE, QPalette.ColorRole.AlternateBase: PANEL,
        QPalette.ColorRole.ToolTipBase: HEADER, QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.Text: TEXT, QPalette.ColorRole.Button: "#33363c",
        QPalette.ColorRole.ButtonText: TEXT, QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: ACCENT, QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: ACCENT, QPalette.ColorRole.PlaceholderText: TEXT_DIM,
        QPalette.ColorRole.Mid: BORDER, QPalette.ColorRole.Dark: BASE, QPalette.ColorRole.Light: "#4a4e55",
    }
    for role, color in roles.items():
        pal.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#666b73"))
    app.setPalette(pal)
    font = QFont(app.font())
    if font.pointSizeF() < 9.5:
        font.setPointSizeF(9.5)
    app.setFont(font)
    app.setStyleSheet(STYLESHEET)
