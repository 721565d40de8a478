"""The package's shape: the core never imports Streamlit, and no module of ``mediagen`` takes
part in an import circle, whether its imports run at load time, inside functions (lazily) or
only for type checking."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT


def test_core_does_not_import_streamlit() -> None:
    code = (
        "import sys, pkgutil, importlib, mediagen\n"
        "for m in pkgutil.walk_packages(mediagen.__path__, 'mediagen.'):\n"
        "    if not m.name.startswith('mediagen.ui') and m.name != 'mediagen.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "assert 'streamlit' not in sys.modules, 'the core imported streamlit'\n"
        "print(len([n for n in sys.modules if n.startswith('mediagen')]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 40  # the walk really imported the package's modules


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module below ``root`` (the folder of ``package``) by its dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the package that ``name`` imports anywhere in its file. ``from x import y``
    names the module ``x.y`` when that is a module, else ``x``."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {target for target in targets if target in modules and target != name}


def import_circles(root: Path, package: str) -> list[list[str]]:
    """Each group of modules that import one another round in a circle (Tarjan's strongly
    connected components with more than one member), members sorted."""
    modules = module_names(root, package)
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(circles)


def test_no_module_of_mediagen_is_in_an_import_circle() -> None:
    assert import_circles(ROOT / "mediagen", "mediagen") == []


def test_the_circle_finder_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def later():\n    from ..a import x\n")  # lazy
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n")
    (pkg / "d.py").write_text("import pkg.c\n")
    (pkg / "e.py").write_text("from . import a\n")  # imports into a circle, is not part of one
    assert import_circles(pkg, "pkg") == [["pkg.a", "pkg.sub.b"], ["pkg.c", "pkg.d"]]
