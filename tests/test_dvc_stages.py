"""``dvc.yaml``'s code deps cover what each stage imports, so a change to any module a stage runs reruns it.

The modules a stage runs are the library modules its command calls and everything they import (the import
graph, grimp); the CLI module itself is listed as a file (its other commands' imports do not count).
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NATIVE_FACE = "builder.engine"  # the module that loads pianoscribe_native: its users depend on native/
STAGE_ENTRIES = {
    "bank": ["builder.banks"],
    "corpus": ["builder.corpus"],
    "synth": ["builder.dataset.synth", "builder.banks", "builder.corpus"],
    "fit": ["trainer.fit"],
    "fit_offline": ["trainer.fit.offline"],
    "evaluate": ["trainer.evaluation.evaluate", "trainer.inference.frame_model"],
}


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("pianoscribe", "builder", "trainer")


def stage_deps(name: str) -> list[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    stage = stages[name]
    return list(stage["do"]["deps"] if "do" in stage else stage["deps"])


def module_file(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    return (path / "__init__.py") if path.is_dir() else path.with_suffix(".py")


@pytest.mark.parametrize("stage", sorted(STAGE_ENTRIES))
def test_a_stage_depends_on_every_module_it_imports(graph, stage):
    modules = set(STAGE_ENTRIES[stage])
    for entry in STAGE_ENTRIES[stage]:
        modules |= graph.find_upstream_modules(entry)
    for module in list(modules):  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
        parts = module.split(".")
        modules |= {".".join(parts[:end]) for end in range(1, len(parts))}
    deps = [ROOT / dep for dep in stage_deps(stage)]
    cli = "builder/cli.py" if STAGE_ENTRIES[stage][0].startswith("builder") else "trainer/cli.py"
    assert cli in stage_deps(stage), f"{stage}: its command's module {cli} is not a dep"
    uncovered = sorted(
        str(module_file(module).relative_to(ROOT))
        for module in modules
        if not any(module_file(module).is_relative_to(dep) for dep in deps)
    )
    assert not uncovered, f"dvc.yaml stage {stage} imports {uncovered} but does not depend on them"
    if NATIVE_FACE in modules:
        assert "native/" in stage_deps(stage), f"{stage}: uses the native engine but native/ is not a dep"
