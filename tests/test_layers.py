"""The import contracts in pyproject.toml (`lint-imports`, also run by `make test`) hold for
the tree, and each of them fails on the wrong-way import it is there to stop."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(tree: Path | None = None) -> subprocess.CompletedProcess:
    """lint-imports with this repo's contracts, on the installed tree or on a copy of it."""
    # The copy is found first: it is the working directory (sys.path[0] of `python -c`).
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache", "--config",
                           str(ROOT / "pyproject.toml")], cwd=tree or ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, wrong_import, contract", [
    # serving loading training code to read a model artifact
    ("lookalike/model/shelf.py", "import lookalike.training", "Serving never imports training"),
    # the query API importing the Celery worker to queue a job
    ("lookalike/api/servicer.py", "import lookalike_services.worker.main", "Layers"),
    # Search taking its image limits from the ingest pipeline
    ("lookalike/api/servicer.py", "import lookalike.pipeline.ingest", "not from the ingest pipeline"),
    # the storage engine emitting metrics
    ("lookalike/store/edge.py", "import lookalike.observability", "The store emits no metrics"),
    # the query service reaching into the worker service
    ("services/query/main.py", "import lookalike_services.worker.main", "not each other"),
])
def test_a_wrong_way_import_breaks_its_contract(tmp_path: Path, module: str, wrong_import: str,
                                                contract: str) -> None:
    shutil.copytree(ROOT / "lookalike", tmp_path / "lookalike")
    shutil.copytree(ROOT / "services", tmp_path / "lookalike_services")  # as installed
    target = tmp_path / module.replace("services/", "lookalike_services/", 1)
    target.write_text(target.read_text() + f"\n{wrong_import}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), result.stdout
