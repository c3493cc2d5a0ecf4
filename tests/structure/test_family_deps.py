"""A stage depends on the model families it runs, not on the others.

The families are plug-ins that ``specdenoise.models`` imports by name (``get_family``), and
``specdenoise.config`` validates their settings from the catalogue without importing them. So an
edit of the posterior's code does not rerun the universe, the data stages or the AE/VAE/PCA
trainings (and an edit of the networks does not rerun the posterior's training).
"""

from __future__ import annotations

import pytest
import typer

from structure.importgraph import (
    FAMILY_PACKAGE,
    build_graph,
    covered,
    discover,
    dvc_stages,
    family_modules,
    for_family,
    named_family,
    rel,
    stage_closure_files,
)

STAGES = dvc_stages()
FAMILIES = family_modules()


@pytest.fixture(scope="module")
def code():
    from specdenoise.cli import app

    modules = discover()
    return {"root": typer.main.get_command(app), "modules": modules, "graph": build_graph(modules)}


def _file(module: str, modules) -> str:
    return rel(modules[module])


def test_the_catalogue_is_read_from_its_text_as_python_reads_it():
    from specdenoise.models.catalogue import BUILTIN

    assert FAMILIES == {name: module for name, (module, _) in BUILTIN.items()}
    assert named_family("specdenoise train --params p.yaml --model vae --latent-dim 6") == "vae"
    assert named_family("specdenoise train --model=ae") == "ae"
    assert named_family("specdenoise evaluate --models-dir models") is None


def test_for_family_drops_only_the_other_families_edges(code):
    graph = code["graph"]
    assert set(FAMILIES.values()) <= graph[FAMILY_PACKAGE]  # get_family can import every family
    ae = for_family(graph, "ae", FAMILIES)
    assert ae[FAMILY_PACKAGE] == graph[FAMILY_PACKAGE] - {"specdenoise.models.linear", "specdenoise.models.posterior"}
    assert for_family(graph, None, FAMILIES) == graph and for_family(graph, "smooth", FAMILIES) == graph
    assert graph[FAMILY_PACKAGE] >= set(FAMILIES.values())  # the input is left as it was


@pytest.mark.parametrize("name", sorted(n for n, s in STAGES.items() if named_family(s["cmd"]) in FAMILIES))
def test_a_stage_that_trains_one_family_depends_on_no_other(name, code):
    """Its closure holds only its family's module; its deps (one list for all the stages of its
    ``matrix:``) only the modules of the families that matrix trains."""
    stage, family = STAGES[name], named_family(STAGES[name]["cmd"])
    files = set(stage_closure_files(stage, code["root"], code["graph"], code["modules"]))
    own = _file(FAMILIES[family], code["modules"])
    assert own in files and covered(own, stage["deps"])
    trained = {FAMILIES[named_family(s["cmd"])] for s in STAGES.values() if s["base"] == stage["base"]}
    for other in set(FAMILIES.values()) - {FAMILIES[family]}:
        path = _file(other, code["modules"])
        assert path not in files, f"{name} ({family}) imports {path}"
        if other not in trained:
            assert not covered(path, stage["deps"]), f"{name} ({family}) lists {path} in its deps"


@pytest.mark.parametrize("name", ["universe", "select", "observe", "preprocess", "noise", "validate"])
def test_the_data_stages_depend_on_no_family(name, code):
    files = stage_closure_files(STAGES[name], code["root"], code["graph"], code["modules"])
    for module in set(FAMILIES.values()):
        path = _file(module, code["modules"])
        assert path not in files and not covered(path, STAGES[name]["deps"]), f"{name}: {path}"
