"""The package layout: an acyclic import graph, imports at module top, modules and functions of bounded size.

Everything is read from the source with ``ast`` (see ``importgraph.py``); nothing is imported.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter

import pytest

from structure.importgraph import SRC, all_imports, build_graph, discover, find_cycle, rel

#: Third-party packages slow to import (or with import-time side effects): these may be imported
#: inside a function so that ``import specdenoise...`` and ``specdenoise --help`` stay light.
#: An entry covers its sub-modules; a dotted entry (``"scipy.stats"``) covers only that sub-tree.
HEAVY_IMPORTS: frozenset[str] = frozenset(
    {
        "tensorflow",
        "keras",
        "mlflow",
        "dask",
        "distributed",
        "great_expectations",
        "optuna",
        "matplotlib",
        "ppxf",
        "bagpipes",
        "jax",
        "sklearn",
        "joblib",
        "astropy.cosmology",  # ~0.6 s to import (Planck18), needed only by the universe's distances
        "scipy.stats",  # ~0.6 s to import, needed only for rank correlations
    }
)

#: Standard-library imports are cheap: they belong at module top like everything else.
#: (Set to True to let them be lazy, i.e. to apply the rule to third-party imports only.)
ALLOW_LAZY_STDLIB = False

#: Files where a specdenoise import inside a function is the point: the lazy ``Denoiser`` export
#: of the package, and the MLflow "models from code" file that MLflow executes on its own.
LAZY_INTERNAL_IMPORTS: frozenset[str] = frozenset(
    {
        "src/specdenoise/__init__.py",
        # get_family / load_model import a family's module when first asked for, so that the
        # config (and every data stage) needs only the catalogue: see specdenoise/models/catalogue.py
        "src/specdenoise/models/__init__.py",
        # the benchmark and batch modules load the survey and fitting stack, which every other command
        # (every DVC stage's process) would pay for at start: imported in their commands
        "src/specdenoise/cli/bench.py",
        "src/specdenoise/cli/denoise.py",
        "src/specdenoise/tracking/pyfunc_model.py",
        "src/specdenoise/tracking/served_model.py",
    }
)

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

#: Modules allowed over MAX_MODULE_LINES: repo-relative path -> reason.
MODULE_SIZE_ALLOWED: dict[str, str] = {}

#: Functions allowed over MAX_FUNCTION_LINES: "path:qualified.name" -> reason.
FUNCTION_SIZE_ALLOWED: dict[str, str] = {}

MODULES = discover()
IMPORTS = all_imports(MODULES)


def test_the_package_is_found_and_imports_are_seen():
    # guards the tests below against passing on nothing (a moved src/ or a broken parser)
    assert "specdenoise" in MODULES and "specdenoise.cli" in MODULES, sorted(MODULES)[:10]
    assert len(MODULES) > 20
    assert any(i.internal for i in IMPORTS) and any(not i.internal for i in IMPORTS)


def test_import_graph_is_acyclic():
    graph = build_graph(MODULES)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _is_heavy(target: str) -> bool:
    return any(target == h or target.startswith(h + ".") for h in HEAVY_IMPORTS)


def _is_stdlib(top: str) -> bool:
    return top in sys.stdlib_module_names


def import_violations(imports=IMPORTS) -> list[str]:
    """Imports inside functions that should be at module top."""
    bad = []
    for imp in imports:
        if not imp.in_function:
            continue
        where = rel(imp.path)
        if imp.internal:
            if where not in LAZY_INTERNAL_IMPORTS:
                bad.append(f"{imp.where()}: specdenoise import of {imp.target} inside a function")
        elif not _is_heavy(imp.target):
            kind = "standard-library" if _is_stdlib(imp.top) else "third-party"
            if kind == "standard-library" and ALLOW_LAZY_STDLIB:
                continue
            bad.append(f"{imp.where()}: {kind} import of {imp.target} inside a function (not in HEAVY_IMPORTS)")
    return bad


def test_imports_are_at_module_top():
    bad = import_violations()
    per_file = Counter(b.split(":")[0] for b in bad)
    summary = "\n".join(f"  {n:3d}  {f}" for f, n in per_file.most_common())
    assert not bad, f"{len(bad)} import(s) inside functions, per file:\n{summary}\n" + "\n".join(bad)


def test_the_import_rule_tells_heavy_from_light():
    """The rule itself: a heavy third-party import may be lazy, anything else may not."""
    from structure.importgraph import Import

    path = SRC / "specdenoise" / "x.py"

    def imp(target, internal, in_function=True):
        return Import("specdenoise.x", path, 1, target, internal, in_function, False)

    assert import_violations([imp("matplotlib.pyplot", False), imp("numpy", False, in_function=False)]) == []
    assert len(import_violations([imp("matplotlibx", False)])) == 1  # a name prefix is not a sub-module
    assert len(import_violations([imp("numpy", False), imp("json", False), imp("specdenoise.io", True)])) == 3
    lazy = Import(
        "specdenoise", SRC / "specdenoise" / "__init__.py", 1, "specdenoise.survey.denoiser", True, True, False
    )
    assert import_violations([lazy]) == []


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) for every def, nested ones and methods included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from _functions(node, name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def sizes() -> tuple[dict[str, int], dict[str, int]]:
    """Lines per module (path) and per function ("path:qualified.name", def line to last line)."""
    modules, functions = {}, {}
    for path in MODULES.values():
        text = path.read_text()
        where = rel(path)
        modules[where] = len(text.splitlines())
        for name, node in _functions(ast.parse(text)):
            functions[f"{where}:{name}"] = node.end_lineno - node.lineno + 1
    return modules, functions


MODULE_LINES, FUNCTION_LINES = sizes()


def test_modules_and_functions_are_small():
    modules = [
        f"{k}: {n} lines"
        for k, n in sorted(MODULE_LINES.items())
        if n > MAX_MODULE_LINES and k not in MODULE_SIZE_ALLOWED
    ]
    functions = [
        f"{k}: {n} lines"
        for k, n in sorted(FUNCTION_LINES.items())
        if n > MAX_FUNCTION_LINES and k not in FUNCTION_SIZE_ALLOWED
    ]
    msg = []
    if modules:
        msg.append(f"modules over {MAX_MODULE_LINES} lines:\n  " + "\n  ".join(modules))
    if functions:
        msg.append(f"functions over {MAX_FUNCTION_LINES} lines (def line to last line):\n  " + "\n  ".join(functions))
    assert not msg, "\n".join(msg)


@pytest.mark.parametrize(
    ("allowed", "measured", "limit"),
    [
        (MODULE_SIZE_ALLOWED, MODULE_LINES, MAX_MODULE_LINES),
        (FUNCTION_SIZE_ALLOWED, FUNCTION_LINES, MAX_FUNCTION_LINES),
    ],
    ids=["modules", "functions"],
)
def test_size_allow_lists_are_explained_and_current(allowed, measured, limit):
    """Every allow-list entry says why, and names something that exists and is still over the limit."""
    for key, reason in allowed.items():
        assert isinstance(reason, str) and len(reason.strip()) >= 10, f"{key}: give a reason"
        assert key in measured, f"{key}: no such module/function (remove the entry)"
        assert measured[key] > limit, f"{key}: {measured[key]} lines, within the limit now (remove the entry)"


def test_only_the_tracking_package_imports_mlflow():
    """MLflow is reached through :mod:`specdenoise.tracking` only (one place to configure the store)."""
    modules = discover()
    outside = sorted(
        imp.where()
        for imp in all_imports(modules)
        if not imp.internal and imp.top == "mlflow" and not imp.importer.startswith("specdenoise.tracking")
    )
    assert not outside, f"mlflow imported outside specdenoise.tracking: {outside}"
