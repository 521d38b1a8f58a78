"""The import-linter contract types of tests/import_contracts.py see the top-level scripts' imports,
those inside functions included, which plain import-linter leaves out (it graphs packages only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

CONFIG = """
[tool.importlinter]
root_packages = ["ui", "core"]
include_external_packages = true
contract_types = [
    "script_layers: tests.import_contracts.ScriptLayersContract",
    "script_forbidden: tests.import_contracts.ScriptForbiddenContract",
]

[[tool.importlinter.contracts]]
name = "main never imports ui"
type = "script_forbidden"
scripts = ["main.py"]
source_modules = ["main"]
forbidden_modules = ["ui"]

[[tool.importlinter.contracts]]
name = "ui above main above core"
type = "script_layers"
scripts = ["main.py"]
layers = ["ui", "main", "core"]
"""


def lint(tmp_path: Path, main: str) -> subprocess.CompletedProcess:
    """lint-imports on a two-package project whose script main.py is ``main``."""
    for package in ("ui", "core"):
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "ui" / "widgets.py").write_text("import core\n")
    (tmp_path / "main.py").write_text(main)
    (tmp_path / "pyproject.toml").write_text(CONFIG)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # where tests.import_contracts is found
    return subprocess.run([str(LINT_IMPORTS), "--no-logo", "--no-cache"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_script_that_keeps_to_its_layer_keeps_both_contracts(tmp_path):
    kept = lint(tmp_path, "import argparse\n\nimport core\n")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "2 kept, 0 broken" in kept.stdout


def test_a_lazy_import_in_a_script_function_breaks_both_contracts(tmp_path):
    broken = lint(tmp_path, "import core\n\n\ndef serve():\n    from ui import widgets\n    return widgets\n")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "0 kept, 2 broken" in broken.stdout
    assert "main -> ui.widgets (l.5)" in broken.stdout
