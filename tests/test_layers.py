"""The floors of occgui (docs/architecture.md): which code may import which.

Every module's imports are read with ``ast`` -- imports inside functions included, relative
imports resolved -- and mapped to *units*: ``occgui``'s subpackages and top-level modules
(``occgui.parsing``, ``occgui.results``, ...). Floors, bottom to top:

* **inference** -- typed results and settings (the bottom: errors and labels only), the stage
  packages (detection, landmarks, parsing, synthesis, geometry, texture, ...), export, and above
  them the pipeline runner (``occgui.pipeline``, which no stage imports). A unit not named below
  is inference (new stage packages land there by default);
* **training** -- ``occgui.training`` (trainers, datasets, packers, synthetic occlusion);
* **eval** -- ``occgui.eval``;
* **gui** -- ``occgui.gui``;
* **entries** -- the command line and the launchers, which may import every floor; only the GUI
  launcher imports the GUI.

Inference never imports training, eval or gui; training never imports eval or gui; nothing but
the GUI launcher imports gui; and the unit graph has no cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "occgui"

#: the runner: above the stage packages, which never import it
RUNNER = "occgui.pipeline"
#: inference units above the runner (they run pipelines); no stage imports them either
ABOVE_RUNNER = {"occgui.batch"}
TRAINING = {"occgui.training"}
EVAL = {"occgui.eval"}
GUI = {"occgui.gui"}
#: entries: may import any floor. Only GUI_LAUNCHERS may import the GUI.
ENTRIES = {"occgui.__main__", "occgui.cli", "occgui.frozen_entry", "occgui.gui_launcher"}
GUI_LAUNCHERS = {"occgui.gui_launcher"}
#: the bottom floor: imports nothing of the project but these
BOTTOM = {"occgui.results": {"occgui.errors", "occgui.labels"},
          "occgui.settings": {"occgui.errors", "occgui.labels"},
          "occgui.errors": set(), "occgui.labels": set()}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from X import name`` yields X and X.name)."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)
    return out


def unit(module: str) -> str:
    """``occgui.parsing.unet`` -> ``occgui.parsing``; ``occgui.cli`` -> ``occgui.cli``."""
    return ".".join(module.split(".")[:2])


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def unit_edges() -> dict[str, set[str]]:
    """unit -> units it imports (other than itself and the bare ``occgui`` package)."""
    mods = project_modules()
    edges: dict[str, set[str]] = {}
    for mod, path in mods.items():
        for target in imported_modules(path):
            if target in mods and target != "occgui" and unit(target) != unit(mod):
                edges.setdefault(unit(mod), set()).add(unit(target))
    return edges


def floor(u: str) -> str:
    if u in ENTRIES:
        return "entry"
    if u in GUI:
        return "gui"
    if u in EVAL:
        return "eval"
    if u in TRAINING:
        return "training"
    return "inference"


FORBIDDEN = {"inference": {"training", "eval", "gui", "entry"}, "training": {"eval", "gui", "entry"},
             "eval": {"gui", "entry"}, "gui": set(), "entry": set()}


def violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for a, targets in sorted(edges.items()):
        for b in sorted(targets):
            if floor(b) in FORBIDDEN[floor(a)]:
                bad.append(f"{a} ({floor(a)}) imports {b} ({floor(b)})")
            elif (b == RUNNER or b in ABOVE_RUNNER) and floor(a) == "inference" and a not in ABOVE_RUNNER | {RUNNER}:
                bad.append(f"{a} (a stage) imports the runner ({b}), which stands above the stages")
            elif floor(b) == "gui" and floor(a) != "gui" and a not in GUI_LAUNCHERS:
                bad.append(f"{a} imports the GUI ({b}); only {', '.join(sorted(GUI_LAUNCHERS))} may")
        if a in BOTTOM and not targets <= BOTTOM[a]:
            bad.append(f"{a} is at the bottom floor but imports {', '.join(sorted(targets - BOTTOM[a]))}")
    return bad


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of units (first = last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_floors_are_respected():
    assert violations(unit_edges()) == []


def test_units_form_no_cycle():
    cycle = find_cycle(unit_edges())
    assert cycle is None, " -> ".join(cycle)


def test_imports_inside_functions_and_relative_ones_are_seen():
    """The reader resolves relative imports and sees the ones inside functions."""
    pkg = ROOT / "parsing"
    mods = imported_modules(pkg / "unet_parser.py")
    assert "occgui.parsing.preprocess" in mods       # ``from .preprocess import`` inside a function
    assert "occgui.labels" in mods                   # ``from .. import labels``


@pytest.mark.parametrize("edges,expected", [
    ({"occgui.parsing": {"occgui.training"}}, "occgui.parsing (inference) imports occgui.training (training)"),
    ({"occgui.synthesis": {"occgui.eval"}}, "occgui.synthesis (inference) imports occgui.eval (eval)"),
    ({"occgui.identity": {"occgui.gui"}}, "occgui.identity (inference) imports occgui.gui (gui)"),
    ({"occgui.training": {"occgui.eval"}}, "occgui.training (training) imports occgui.eval (eval)"),
    ({"occgui.cli": {"occgui.gui"}}, "occgui.cli imports the GUI (occgui.gui); only occgui.gui_launcher may"),
    ({"occgui.results": {"occgui.parsing"}}, "occgui.results is at the bottom floor but imports occgui.parsing"),
    ({"occgui.texture": {"occgui.pipeline"}},
     "occgui.texture (a stage) imports the runner (occgui.pipeline), which stands above the stages"),
    ({"occgui.geometry": {"occgui.batch"}},
     "occgui.geometry (a stage) imports the runner (occgui.batch), which stands above the stages"),
    ({"occgui.batch": {"occgui.pipeline", "occgui.export"}}, None),   # batches run pipelines
])
def test_a_forbidden_import_is_reported(edges, expected):
    assert violations(edges) == ([expected] if expected else [])


def test_a_cycle_is_found():
    assert find_cycle({"occgui.a": {"occgui.b"}, "occgui.b": {"occgui.c"}, "occgui.c": {"occgui.a"}}) == \
        ["occgui.a", "occgui.b", "occgui.c", "occgui.a"]
    assert find_cycle({"occgui.a": {"occgui.b"}, "occgui.b": set()}) is None


def test_training_package_holds_the_trainers():
    """Every trainer, dataset, packer and occlusion generator lives under occgui/training/."""
    mods = project_modules()
    for name in ("occgui.training.parsing.train", "occgui.training.parsing.dataset", "occgui.training.parsing.pack",
                 "occgui.training.parsing.evaluate", "occgui.training.landmarks.train_refiner",
                 "occgui.training.occlusion.occluders", "occgui.training.occlusion.procedural_hand"):
        assert name in mods, name
    assert not [m for m in mods if m.rpartition(".")[2].startswith("train") and not m.startswith("occgui.training")]
