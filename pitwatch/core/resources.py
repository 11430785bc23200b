"""The files pitwatch ships (rules, alertmanager.yml, templates, runbook, boards,
compose stack, example config), found inside the installed package.

They come from ``importlib.resources``, never from the source tree, so an installed
wheel and an editable checkout read the same files. Prometheus and Alertmanager read
rules and templates by path: a wheel installs as plain files, so the paths are real.
"""
from __future__ import annotations

import fnmatch
import shutil
from importlib import resources
from pathlib import Path

# Never exported from a checkout (an installed wheel holds none of them): secrets and
# the compose .env files an operator writes next to the stack.
PRIVATE = ("compose/secrets/*", "compose/.env", "compose/.env.history")
KEEP = ("compose/secrets/README.md",)

# Top-level name a user sees -> the package that holds it.
SHIPPED = {
    "alerts": "pitwatch.alerts",
    "compose": "pitwatch.compose",
    "pitwatch.example.yml": "pitwatch",
}


def path(*parts: str) -> Path:
    """The shipped file or folder ``parts`` (e.g. ``path("alerts", "rules")``)."""
    head, *rest = parts
    if head not in SHIPPED:
        raise KeyError(f"pitwatch ships no {head!r}")
    root = resources.files(SHIPPED[head])
    found = Path(str(root if head in ("alerts", "compose") else root / head))
    return found.joinpath(*rest)


def alerts(*parts: str) -> Path:
    return path("alerts", *parts)


def compose(*parts: str) -> Path:
    return path("compose", *parts)


def _private(rel: Path) -> bool:
    text = rel.as_posix()
    return text not in KEEP and any(fnmatch.fnmatch(text, p) for p in PRIVATE)


def export(dest: Path) -> list[Path]:
    """Copy every shipped file under ``dest`` (alerts/, compose/, pitwatch.example.yml),
    refusing to overwrite what is there. Returns the files written."""
    written: list[Path] = []
    planned: list[tuple[Path, Path]] = []
    for name in SHIPPED:
        src = path(name)
        files = [src] if src.is_file() else sorted(
            p for p in src.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.name != "__init__.py")
        for f in files:
            rel = Path(name) if f == src else Path(name) / f.relative_to(src)
            if _private(rel):
                continue
            planned.append((f, dest / rel))
    clashes = [str(d) for _, d in planned if d.exists()]
    if clashes:
        raise FileExistsError(f"{clashes[0]} exists (and {len(clashes) - 1} more): "
                              "export into an empty folder")
    for src, dst in planned:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        written.append(dst)
    return written
