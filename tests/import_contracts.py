"""Import-linter contract types that also check the top-level scripts (app.py, cli.py).

Import-linter builds its graph from packages only, so the two scripts at the top of the repository
would escape every contract. These types read each script's imports, those inside functions
included (cli.py imports lazily), add the script to the graph as a module named after its file, and
then check exactly as the standard ``layers`` and ``forbidden`` types do. pyproject.toml registers
them; ``make test`` runs ``lint-imports``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from grimp import ImportGraph
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.domain import fields
from importlinter.domain.contract import ContractCheck


def _imported_names(tree: ast.Module) -> Iterable[tuple[str, int]]:
    """(dotted name, line) for every absolute import anywhere in the script."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:  # "from components import page" may name a module or an attribute
                yield f"{node.module}.{alias.name}", node.lineno


def _graph_module(graph: ImportGraph, dotted: str) -> str:
    """The most specific module of the graph that ``dotted`` names; an outside package not in the
    graph yet is added as one squashed module, as import-linter does with external packages."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in graph.modules:
            return name
    graph.add_module(parts[0], is_squashed=True)
    return parts[0]


def add_scripts(graph: ImportGraph, scripts: Iterable[str]) -> None:
    """Add each script (a path relative to the working directory) and its imports to ``graph``."""
    for script in scripts:
        path = Path(script)
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        importer = path.stem
        graph.add_module(importer)
        for dotted, line in _imported_names(ast.parse(source, filename=script)):
            imported = _graph_module(graph, dotted)
            if imported != importer:
                graph.add_import(importer=importer, imported=imported, line_number=line,
                                 line_contents=lines[line - 1].strip())


class ScriptLayersContract(LayersContract):
    """``layers``, with ``scripts`` (paths of top-level scripts) usable as layers."""

    type_name = "script_layers"
    scripts = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        add_scripts(graph, self.scripts or ())  # type: ignore[arg-type]
        return super().check(graph, verbose)


class ScriptForbiddenContract(ForbiddenContract):
    """``forbidden``, with ``scripts`` (paths of top-level scripts) usable as source modules."""

    type_name = "script_forbidden"
    scripts = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        add_scripts(graph, self.scripts or ())  # type: ignore[arg-type]
        return super().check(graph, verbose)
