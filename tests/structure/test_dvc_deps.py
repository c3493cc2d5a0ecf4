"""Every DVC stage declares, as ``deps:``, the source files of all the code its command can import.

The stage's ``cmd`` names a specdenoise command (the words after ``specdenoise`` up to the first
option); its callback's module and the transitive closure of that module's specdenoise imports
(``importgraph``) must lie within the stage's declared deps (a file, or a folder containing it).
``python tests/structure/print_deps.py`` prints the deps that satisfy this.
"""

from __future__ import annotations

import pytest
import typer

from structure.importgraph import (
    build_graph,
    callback_module,
    cli_words,
    covered,
    discover,
    dvc_stages,
    minimal_deps,
    missing_deps,
    rel,
    resolve_command,
    stage_closure_files,
)

STAGES = dvc_stages()


@pytest.fixture(scope="module")
def code():
    from specdenoise.cli import app

    modules = discover()
    return {"root": typer.main.get_command(app), "modules": modules, "graph": build_graph(modules)}


def test_dvc_yaml_is_read_and_matrix_stages_are_expanded():
    import yaml

    from structure.importgraph import ROOT

    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(doc) == {s["base"] for s in STAGES.values()}
    for base, stage in doc.items():
        names = [n for n, s in STAGES.items() if s["base"] == base]
        if "matrix" in stage or "foreach" in stage:
            assert len(names) >= 1 and all(n.startswith(base + "@") for n in names), names
            assert not any("${" in STAGES[n]["cmd"] for n in names), "unresolved ${...} in " + names[0]
        else:
            assert names == [base]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_the_code_it_runs(name, code):
    stage = STAGES[name]
    if not cli_words(stage["cmd"]) and "specdenoise" not in stage["cmd"]:
        pytest.skip(f"stage {name} does not run specdenoise")
    files = stage_closure_files(stage, code["root"], code["graph"], code["modules"])
    missing = missing_deps(files, stage["deps"])
    command, used = resolve_command(code["root"], cli_words(stage["cmd"]))
    assert not missing, (
        f"stage '{name}' runs `specdenoise {' '.join(used)}` ({callback_module(command)}), which imports "
        f"{len(files)} specdenoise modules; its deps miss {len(missing)}:\n  " + "\n  ".join(missing)
    )


def test_the_check_reports_a_dropped_dep(code):
    """The check can fail: drop the dep that covers the command's own module and it is reported."""
    name = sorted(STAGES)[0]
    stage = STAGES[name]
    files = stage_closure_files(stage, code["root"], code["graph"], code["modules"])
    deps = list(stage["deps"]) + minimal_deps(files, code["modules"])
    assert missing_deps(files, deps) == []
    command, _ = resolve_command(code["root"], cli_words(stage["cmd"]))
    own = rel(code["modules"][callback_module(command)])
    assert own in files
    reduced = [d for d in deps if not covered(own, [d])]
    assert len(reduced) < len(deps)
    assert own in missing_deps(files, reduced)


def test_covered_by_file_or_folder_only():
    deps = ["src/specdenoise/data", "src/specdenoise/io.py", "data/raw/universe.parquet"]
    assert covered("src/specdenoise/data/select.py", deps) and covered("src/specdenoise/io.py", deps)
    assert not covered("src/specdenoise/data_extra.py", deps)  # a prefix of the name is not a folder
    assert not covered("src/specdenoise/iox.py", deps)
    assert missing_deps(["src/specdenoise/config.py", "src/specdenoise/io.py"], deps) == ["src/specdenoise/config.py"]
