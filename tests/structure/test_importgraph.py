"""The import-graph helper on a small synthetic package with known answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from structure.importgraph import (
    all_imports,
    build_graph,
    cli_words,
    closure,
    discover,
    dvc_stages,
    find_cycle,
    interpolate,
    minimal_deps,
    rel,
)

FILES = {
    "pkg/__init__.py": "from pkg.a import f\n",
    "pkg/a.py": "from . import b\n\ndef f():\n    from .sub import c\n    return c\n",
    "pkg/b.py": "from pkg import sub\nfrom pkg.sub.c import X\n",
    "pkg/sub/__init__.py": "from .c import X\nfrom .. import helpers\n",
    "pkg/sub/c.py": (
        "from typing import TYPE_CHECKING\nimport pkg.helpers as h\n\n"
        "if TYPE_CHECKING:\n    from pkg.b import Y\n\nX = 1\n"
    ),
    "pkg/sub/d.py": "import numpy\nfrom pkg.sub import c\n\n\ndef g():\n    import json\n    return json, numpy, c\n",
    "pkg/helpers.py": "import os\n",
    "pkg/empty/__init__.py": "",
    "pkg/empty/e.py": "from pkg.helpers import os\n",
}


@pytest.fixture
def pkg(tmp_path) -> dict[str, Path]:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return discover(tmp_path, "pkg")


def test_modules_and_edges(pkg):
    assert set(pkg) == {
        "pkg",
        "pkg.a",
        "pkg.b",
        "pkg.sub",
        "pkg.sub.c",
        "pkg.sub.d",
        "pkg.helpers",
        "pkg.empty",
        "pkg.empty.e",
    }
    g = build_graph(pkg, "pkg")
    assert g["pkg"] == {"pkg.a"}  # `from pkg.a import f`: f is not a module
    assert g["pkg.a"] == {"pkg.b", "pkg.sub.c"}  # relative, and inside a function
    assert g["pkg.b"] == {"pkg.sub", "pkg.sub.c"}  # `from pkg import sub` is the sub-package
    assert g["pkg.sub"] == {"pkg.sub.c", "pkg.helpers"}  # `from .c`, `from .. import helpers`
    assert g["pkg.sub.c"] == {"pkg.helpers"}  # no parent packages, TYPE_CHECKING ignored
    assert g["pkg.sub.d"] == {"pkg.sub.c"}
    assert g["pkg.empty.e"] == {"pkg.helpers"}  # `from pkg.helpers import os`: os is a name there


def test_import_records(pkg):
    imps = all_imports(pkg, "pkg")
    lazy = {(i.importer, i.target) for i in imps if i.in_function}
    assert lazy == {("pkg.a", "pkg.sub.c"), ("pkg.sub.d", "json")}
    external = {(i.importer, i.target) for i in imps if not i.internal}
    assert external == {("pkg.sub.c", "typing"), ("pkg.sub.d", "numpy"), ("pkg.sub.d", "json"), ("pkg.helpers", "os")}
    assert [i.target for i in imps if i.type_checking] == ["pkg.b"]


def test_cycles_and_closure(pkg):
    g = build_graph(pkg, "pkg")
    assert find_cycle(g) is None
    assert closure(g, "pkg.sub.d") == {"pkg.sub.d", "pkg.sub.c", "pkg.helpers"}
    assert closure(g, "pkg") == {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "pkg.helpers"}
    g["pkg.helpers"].add("pkg.a")  # a -> b -> sub.c -> helpers -> a
    cycle = find_cycle(g)
    assert cycle is not None and cycle[0] == cycle[-1] and len(cycle) >= 3
    assert all(nxt in g[cur] for cur, nxt in zip(cycle, cycle[1:], strict=False))


def test_minimal_deps_folds_mostly_used_folders(pkg, tmp_path):
    files = {rel(pkg[m]) for m in ("pkg.sub", "pkg.sub.c", "pkg.helpers")}
    deps = minimal_deps(files, pkg, threshold=0.5, package_dir=tmp_path / "pkg")
    # sub/: 2 of 3 modules -> the folder; helpers.py alone; the package root is never folded
    assert deps == sorted([rel(tmp_path / "pkg/helpers.py"), rel(tmp_path / "pkg/sub")])
    # by default only a folder whose every module is needed (a folder dep reruns on any edit in it)
    assert minimal_deps(files, pkg, package_dir=tmp_path / "pkg") == sorted(files)
    one = minimal_deps({rel(pkg["pkg.sub.c"])}, pkg, package_dir=tmp_path / "pkg")
    assert one == [rel(pkg["pkg.sub.c"])]  # 1 of 3: the file
    assert minimal_deps({rel(pkg["pkg.empty.e"])}, pkg, package_dir=tmp_path / "pkg") == [rel(tmp_path / "pkg/empty")]


def test_dvc_stages_matrix_and_interpolation(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  families: [pca, vae]\n  dims: [2, 4]\nmzr:\n  dim: 6\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  train:\n"
        "    matrix:\n      family: ${train.families}\n      dim: ${train.dims}\n"
        "    cmd: specdenoise train --model ${item.family} --latent-dim ${item.dim}\n"
        "    deps:\n      - models/${item.family}_${item.dim}\n      - src/specdenoise/models\n"
        "  desi:\n"
        "    cmd: >-\n      specdenoise mzr desi\n      --dim ${mzr.dim}\n"
        "    deps:\n      - src/specdenoise/data/desi.py\n"
    )
    st = dvc_stages(tmp_path / "dvc.yaml", tmp_path / "params.yaml")
    assert sorted(st) == ["desi", "train@pca-2", "train@pca-4", "train@vae-2", "train@vae-4"]
    assert st["train@vae-4"]["cmd"] == "specdenoise train --model vae --latent-dim 4"
    assert st["train@vae-4"]["deps"] == ["models/vae_4", "src/specdenoise/models"]
    assert st["desi"]["cmd"] == "specdenoise mzr desi --dim 6" and st["desi"]["base"] == "desi"
    assert cli_words(st["desi"]["cmd"]) == ["mzr", "desi"]
    assert cli_words(".venv/bin/specdenoise -q data universe --out x") == []
    assert cli_words("python -m other") == []
    assert interpolate("${missing.key}", {}) == "${missing.key}"
