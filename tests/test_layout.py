"""The house rules that keep the package readable and the pipeline's cache honest."""

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

SRC = ROOT / "src"
PACKAGE = SRC / "nmtpipe"
# Modules that cannot change a stage's outputs, so no stage needs to depend on them.
EXEMPT = {
    "src/nmtpipe/errors.py": "the error classes: one-line messages only",
    "src/nmtpipe/logs.py": "logging set-up and progress bars only",
}
STAGES = ("download", "clean", "split", "tokenize", "encode", "train", "evaluate", "export")


def module_file(name: str) -> Path:
    path = SRC / name.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def nmtpipe_imports(path: Path):
    """Every nmtpipe module a file imports, at its top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("nmtpipe"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nmtpipe"):
            yield node.module
            for alias in node.names:  # `from nmtpipe.corpus import sources`
                if module_file(f"{node.module}.{alias.name}").is_file():
                    yield f"{node.module}.{alias.name}"


def import_closure(module: str) -> set[str]:
    """The files of src/ that running `module` imports (parent packages included)."""
    seen, todo = set(), [module]
    while todo:
        parts = todo.pop().split(".")
        for depth in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:depth]))
            if path.is_file() and path not in seen:
                seen.add(path)
                todo += nmtpipe_imports(path)
    return {str(path.relative_to(ROOT)) for path in seen}


def docstring_only(path: str) -> bool:
    body = ast.parse((ROOT / path).read_text(encoding="utf-8")).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def uncovered(stage: str, deps: list[str]) -> list[str]:
    """The files stage runs that no dep (file or directory) of its own covers."""
    needed = import_closure(f"nmtpipe.stages.{stage}") - EXEMPT.keys()
    return sorted(
        path
        for path in needed
        if not any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)
        and not docstring_only(path)
    )


def stage_deps() -> dict[str, list[str]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: stage["deps"] for name, stage in stages.items()}


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_depends_on_the_code_it_runs(stage):
    assert uncovered(stage, stage_deps()[stage]) == []


def test_the_deps_check_finds_a_missing_file():
    deps = [dep for dep in stage_deps()["tokenize"] if dep != "src/nmtpipe/ids/tokenizer.py"]
    assert uncovered("tokenize", deps) == ["src/nmtpipe/ids/tokenizer.py"]
    deps = [dep for dep in stage_deps()["evaluate"] if dep != "src/nmtpipe/search"]
    assert "src/nmtpipe/search/beam.py" in uncovered("evaluate", deps)


def test_the_model_package_does_no_io_and_imports_no_data_code():
    allowed = ("nmtpipe.model", "nmtpipe.config", "nmtpipe.errors")
    for path in (PACKAGE / "model").glob("*.py"):
        for name in nmtpipe_imports(path):
            assert name.startswith(allowed), f"{path.name} imports {name}"
        text = path.read_text(encoding="utf-8")
        assert "open(" not in text and "read_text" not in text, path.name


def test_no_module_is_over_400_lines():
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    pages = sorted(path.name for path in (ROOT / "docs").glob("*.md"))
    assert "params.md" in pages and "results.md" in pages
    assert [page for page in pages if f"(docs/{page})" not in readme] == []


def test_only_the_commands_import_serving():
    """serving/ holds commands (cli.py names them as strings): only the export stage imports
    one; the library (search.translator and the rest) imports none."""
    commands = {"stages/export.py"}
    importers = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "serving" not in path.relative_to(PACKAGE).parts
        and any(name.startswith("nmtpipe.serving") for name in nmtpipe_imports(path))
    }
    assert importers == commands
