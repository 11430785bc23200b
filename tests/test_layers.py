"""Dependencies point one way (docs/architecture.md, "Layers").

    front door (pitwatch.cli, .commands, .demo, .check, .drills, …)
        -> parts (pitwatch.exporters, pitwatch.remediation, pitwatch.dashboards)
            -> core (pitwatch.core)

A part imports only the core and itself, never another part nor the front door; the
core imports no other pitwatch module. Inside remediation, the receiver runs the
operations as commands and never imports them, and the operations know nothing of the
receiver. Every import counts, function-level ones included.
"""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("pitwatch.exporters", "pitwatch.remediation", "pitwatch.dashboards")
OPERATIONS = "pitwatch.remediation.operations"


def package_dirs(root: Path) -> dict[str, Path]:
    """Import name -> folder, from pyproject's setuptools mapping (the one source)."""
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools.get("package-dir", {})

    def folder(name: str) -> Path:
        # As setuptools does: a package not mapped itself lies under its nearest mapped parent.
        head, tail = name, []
        while head and head not in mapping:
            head, _, last = head.rpartition(".")
            tail.insert(0, last)
        return root / (mapping[head] if head else "") / "/".join(tail)

    return {name: folder(name) for name in setuptools["packages"]}


def modules(root: Path) -> dict[str, Path]:
    """Module name -> source file of every module the wheel installs."""
    out = {}
    for package, folder in package_dirs(root).items():
        for path in folder.glob("*.py"):
            out[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every pitwatch module ``name`` imports (absolute and relative, at any depth).

    ``from pkg import x`` counts ``pkg.x`` when x is a module of ours, else ``pkg``.
    """
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                      for a in node.names}
    return {m for m in found if m == "pitwatch" or m.startswith("pitwatch.")}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer(name: str) -> str:
    if _within(name, "pitwatch.core"):
        return "core"
    for part in PARTS:
        if _within(name, part):
            return part
    return "front"


def forbidden(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported``, or None when it may."""
    src, dst = layer(importer), layer(imported)
    if src == "core":
        return None if dst == "core" else "the core imports no other pitwatch module"
    if src == "front" or dst == "core":
        return None
    if dst != src:
        return f"{src} may import only the core and itself, not {dst}"
    if src == "pitwatch.remediation":
        if _within(imported, OPERATIONS) and not _within(importer, OPERATIONS):
            return "the receiver runs operations as commands, it does not import them"
        if _within(importer, OPERATIONS) and not _within(imported, OPERATIONS):
            return "the operations know nothing of the receiver"
    return None


def violations(root: Path) -> list[str]:
    mods = modules(root)
    known = set(mods)
    out = []
    for name, path in sorted(mods.items()):
        for imported in sorted(imports(name, path, known)):
            why = forbidden(name, imported)
            if why:
                out.append(f"{path.relative_to(root)}: imports {imported}: {why}")
    return out


def test_the_tree_keeps_the_direction():
    assert violations(ROOT) == []


def test_the_mapping_covers_every_source_folder():
    dirs = package_dirs(ROOT)
    assert {"pitwatch.core", *PARTS, OPERATIONS} <= set(dirs)
    for name, folder in dirs.items():
        assert folder.is_dir(), name
    assert len(modules(ROOT)) > 60


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """A copy of the real pyproject and package folders, plus ``files`` (path -> source)."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    for folder in package_dirs(ROOT).values():
        (tmp_path / folder.relative_to(ROOT)).mkdir(parents=True, exist_ok=True)
    for rel, source in files.items():
        (tmp_path / rel).write_text(source)
    return tmp_path


def test_a_part_importing_the_front_door_fails(tmp_path):
    root = _tree(tmp_path, {"pitwatch/cli.py": "", "exporters/bad.py":
                            "def f():\n    from pitwatch.cli import main\n"})
    assert violations(root) == [
        "exporters/bad.py: imports pitwatch.cli: pitwatch.exporters may import only the "
        "core and itself, not front"]


def test_parts_importing_each_other_or_the_core_reaching_up_fail(tmp_path):
    root = _tree(tmp_path, {
        "dashboards/a.py": "from ..exporters import registry\n",
        "exporters/registry.py": "",
        "pitwatch/core/cfg.py": "import pitwatch.remediation.journal\n",
        "remediation/journal.py": "",
        "remediation/engine.py": "from pitwatch.remediation.operations import restore\n",
        "remediation/operations/restore.py": "from pitwatch.remediation import journal\n",
        "exporters/ok.py": "from pitwatch.core import cfg\nfrom . import registry\n",
    })
    got = violations(root)
    assert len(got) == 4, got
    assert any(v.startswith("dashboards/a.py: imports pitwatch.exporters") for v in got)
    assert any(v.startswith("pitwatch/core/cfg.py:") for v in got)
    assert any(v.startswith("remediation/engine.py:") and "as commands" in v for v in got)
    assert any(v.startswith("remediation/operations/restore.py:") for v in got)
