"""The specdenoise import graph from the source text (standard-library ``ast``; nothing is imported).

Shared by the layout tests (cycles, imports at module top, sizes), the DVC-deps test and
``print_deps.py``. Run as a script from the repository root, ``print_deps.py`` imports this file
as a plain module, so it must import nothing from the tests.

Conventions
-----------
* A module is named like ``specdenoise.data.select``; a package by its ``__init__.py``
  (``specdenoise.cli`` is ``src/specdenoise/cli/__init__.py``).
* ``import specdenoise.a.b`` and ``from specdenoise.a import b`` (``b`` a module) give the edge
  ``importer -> specdenoise.a.b``; ``from specdenoise.a import name`` (``name`` not a module)
  gives ``importer -> specdenoise.a``. Parent packages that Python also runs on the way are
  *not* added as edges.
* Imports anywhere count (module level, in functions, in class bodies) except those under
  ``if TYPE_CHECKING:``, which never run. Calls such as ``importlib.import_module`` are not
  seen.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "specdenoise"


@dataclass(frozen=True)
class Import:
    """One imported name: ``importer`` imports ``target`` at ``path:lineno``."""

    importer: str  # module doing the import
    path: Path  # its file
    lineno: int
    target: str  # resolved module name (internal), or the dotted name as written (external)
    internal: bool  # a module of the package (absolute or relative import)
    in_function: bool  # inside a def / async def / lambda (runs at call time, not import time)
    type_checking: bool  # under ``if TYPE_CHECKING:``

    @property
    def top(self) -> str:
        """Top-level package name: ``matplotlib`` for ``matplotlib.pyplot``."""
        return self.target.split(".")[0]

    def where(self, root: Path = ROOT) -> str:
        return f"{rel(self.path, root)}:{self.lineno}"


def rel(path: Path, root: Path = ROOT) -> str:
    """``path`` relative to the repository root, POSIX style (as in dvc.yaml)."""
    path = Path(path)
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def discover(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``src``: name -> file."""
    modules: dict[str, Path] = {}
    for path in sorted((src / package).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def is_package(name: str, modules: Mapping[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module ``name`` refers to: itself, else its longest prefix that is a module."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in modules:
            return cand
    return None


def _relative_base(importer: str, level: int, modules: Mapping[str, Path]) -> str:
    """The package a ``from .{level}`` import starts from."""
    base = importer if is_package(importer, modules) else importer.rpartition(".")[0]
    for _ in range(level - 1):
        base = base.rpartition(".")[0]
    return base


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(importer: str, modules: Mapping[str, Path], package: str = PACKAGE) -> list[Import]:
    """All imports in one module, internal ones resolved to module names."""
    path = modules[importer]
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[Import] = []

    def add(node: ast.stmt, target: str, internal: bool, in_function: bool, type_checking: bool) -> None:
        found.append(Import(importer, path, node.lineno, target, internal, in_function, type_checking))

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                internal = alias.name == package or alias.name.startswith(package + ".")
                target = (_resolve(alias.name, modules) or alias.name) if internal else alias.name
                add(node, target, internal, in_function, type_checking)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _relative_base(importer, node.level, modules)
                mod = f"{base}.{node.module}" if node.module else base
                internal = True
            else:
                mod = node.module or ""
                internal = mod == package or mod.startswith(package + ".")
            if mod == "__future__":
                return
            if not internal:
                add(node, mod, False, in_function, type_checking)
                return
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                target = sub if alias.name != "*" and sub in modules else _resolve(mod, modules) or mod
                add(node, target, True, in_function, type_checking)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for child in ast.iter_child_nodes(node):
                visit(child, True, type_checking)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, in_function, True)
            for child in node.orelse:
                visit(child, in_function, type_checking)
        else:
            for child in ast.iter_child_nodes(node):
                visit(child, in_function, type_checking)

    visit(tree, False, False)
    return found


def all_imports(modules: Mapping[str, Path] | None = None, package: str = PACKAGE) -> list[Import]:
    modules = discover() if modules is None else modules
    return [imp for name in modules for imp in imports_of(name, modules, package)]


def build_graph(
    modules: Mapping[str, Path] | None = None, package: str = PACKAGE, module_level_only: bool = False
) -> dict[str, set[str]]:
    """Module -> the internal modules it imports (at run time; self-imports dropped).

    ``module_level_only``: only the imports that run when the module is imported (not those
    inside functions)."""
    modules = discover() if modules is None else modules
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for imp in all_imports(modules, package):
        if module_level_only and imp.in_function:
            continue
        if imp.internal and not imp.type_checking and imp.target in modules and imp.target != imp.importer:
            graph[imp.importer].add(imp.target)
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None if the graph is acyclic (iterative DFS)."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    for start in sorted(graph):
        if colour[start] != white:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = grey
        while stack:
            node, children = stack[-1]
            for child in children:
                if colour.get(child, black) == grey:
                    return path[path.index(child) :] + [child]
                if colour.get(child) == white:
                    colour[child] = grey
                    path.append(child)
                    stack.append((child, iter(sorted(graph[child]))))
                    break
            else:
                colour[node] = black
                path.pop()
                stack.pop()
    return None


def closure(graph: Mapping[str, Iterable[str]], start: str) -> set[str]:
    """``start`` and every module it imports, directly or not."""
    seen = {start}
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


#: Packages whose ``__init__`` is followed for its own file only: the command-line package
#: imports every command group to build the command tree, but a stage's outputs depend on
#: its own command's code (modules have no import-time side effects).
ENTRY_PACKAGES = frozenset({f"{PACKAGE}.cli"})


def runtime_closure(graph: Mapping[str, Iterable[str]], top_graph: Mapping[str, Iterable[str]], start: str) -> set[str]:
    """What running ``start`` executes: its closure in ``graph`` (all imports, function-level
    included), plus every parent package Python runs on the way, with the modules those import
    at module level (``top_graph``; a parent's lazy imports run only on demand). The
    :data:`ENTRY_PACKAGES` are included as files but not followed.
    """
    seen = closure(graph, start)
    todo = list(seen)
    while todo:
        parts = todo.pop().split(".")
        for parent in (".".join(parts[:i]) for i in range(1, len(parts))):
            if parent in seen or parent not in graph:
                continue
            seen.add(parent)
            todo.append(parent)
            if parent in ENTRY_PACKAGES:
                continue
            for dep in top_graph.get(parent, ()):
                for mod in closure(graph, dep) - seen:
                    seen.add(mod)
                    todo.append(mod)
    return seen


#: The package that imports the model families on demand (``load_builtin_families``) and the file
#: that names each built-in family's module (its ``BUILTIN`` dict literal).
FAMILY_PACKAGE = f"{PACKAGE}.models"
CATALOGUE = SRC / PACKAGE / "models" / "catalogue.py"


def family_modules(catalogue: Path = CATALOGUE) -> dict[str, str]:
    """Family name -> the module that registers it, read from the catalogue's ``BUILTIN`` literal."""
    for node in ast.parse(catalogue.read_text()).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id == "BUILTIN" and isinstance(node.value, ast.Dict):
            return {k.value: v.elts[0].value for k, v in zip(node.value.keys, node.value.values, strict=True)}
    raise LookupError(f"{catalogue}: no 'BUILTIN: dict[...] = {{...}}' literal")


def named_family(cmd: str) -> str | None:
    """The value of ``--model`` in a stage command; None where it is not given."""
    words = shlex.split(cmd)
    for i, w in enumerate(words):
        if w == "--model" and i + 1 < len(words):
            return words[i + 1]
        if w.startswith("--model="):
            return w.split("=", 1)[1]
    return None


def for_family(graph: Mapping[str, set[str]], family: str | None, families: Mapping[str, str]) -> dict[str, set[str]]:
    """``graph`` without :data:`FAMILY_PACKAGE`'s edges to the other families' modules.

    A stage that names ``--model family`` runs that family's code only: the families are plug-ins
    the package imports by name, and modules have no import-time side effects (the convention of
    :data:`ENTRY_PACKAGES`). A module that imports another family's module directly keeps it.
    ``family`` None or not built in: ``graph`` unchanged.
    """
    out = dict(graph)
    if family in families and FAMILY_PACKAGE in out:
        others = set(families.values()) - {families[family]}
        out[FAMILY_PACKAGE] = set(out[FAMILY_PACKAGE]) - others
    return out


# ----------------------------------------------------------------------------------------------
# DVC stages


def _lookup(context: Mapping, dotted: str):
    value = context
    for key in dotted.split("."):
        value = value[key]
    return value


def interpolate(value, context: Mapping):
    """Substitute ``${a.b}`` from ``context`` (params.yaml + ``item``) in strings, recursively."""
    if isinstance(value, str):
        whole = re.fullmatch(r"\$\{\s*([^}]+?)\s*\}", value)
        if whole:
            try:
                return _lookup(context, whole.group(1))
            except (KeyError, TypeError):
                return value

        def one(m: re.Match) -> str:
            try:
                return str(_lookup(context, m.group(1)))
            except (KeyError, TypeError):
                return m.group(0)

        return re.sub(r"\$\{\s*([^}]+?)\s*\}", one, value)
    if isinstance(value, list):
        return [interpolate(v, context) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, context) for k, v in value.items()}
    return value


def dvc_stages(dvc_yaml: Path = ROOT / "dvc.yaml", params_yaml: Path = ROOT / "params.yaml") -> dict[str, dict]:
    """The stages of dvc.yaml with ``matrix:`` expanded (``name@v1-v2``) and ``${...}`` interpolated.

    Returns name -> ``{"base": stage name in dvc.yaml, "cmd": str, "deps": [str, ...]}``.
    """
    import itertools

    import yaml

    doc = yaml.safe_load(Path(dvc_yaml).read_text())
    params = yaml.safe_load(Path(params_yaml).read_text()) if Path(params_yaml).exists() else {}
    context = dict(params or {})
    for entry in doc.get("vars") or []:  # only inline `vars:` mappings; files named there are not read
        if isinstance(entry, dict):
            context.update(entry)
    out: dict[str, dict] = {}
    for base, stage in (doc.get("stages") or {}).items():
        if "foreach" in stage:  # a mapping (``${key}``, ``${item}``) or a list (``${item}``)
            over = interpolate(stage["foreach"], context)
            pairs = list(over.items()) if isinstance(over, dict) else [(str(i), v) for i, v in enumerate(over)]
            for k, v in pairs:
                ctx = dict(context, key=k, item=v)
                body = stage["do"]
                cmd = interpolate(body["cmd"], ctx)
                cmd = " && ".join(cmd) if isinstance(cmd, list) else str(cmd)
                deps = [d if isinstance(d, str) else next(iter(d)) for d in interpolate(body.get("deps") or [], ctx)]
                out[f"{base}@{k}"] = {"base": base, "cmd": cmd, "deps": deps}
            continue
        if "matrix" in stage:
            matrix = {k: interpolate(v, context) for k, v in stage["matrix"].items()}
            keys = list(matrix)
            variants = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(matrix[k] for k in keys))]
        else:
            variants = [None]
        for item in variants:
            ctx = dict(context, item=item) if item is not None else context
            name = base if item is None else f"{base}@{'-'.join(str(v) for v in item.values())}"
            cmd = interpolate(stage["cmd"], ctx)
            cmd = " && ".join(cmd) if isinstance(cmd, list) else str(cmd)
            deps = [d if isinstance(d, str) else next(iter(d)) for d in interpolate(stage.get("deps") or [], ctx)]
            out[name] = {"base": base, "cmd": cmd, "deps": deps}
    return out


def cli_words(cmd: str, program: str = "specdenoise") -> list[str]:
    """The words after ``program`` in a stage command, up to the first option."""
    words = shlex.split(cmd)
    starts = [i for i, w in enumerate(words) if Path(w).name == program]
    if not starts:
        return []
    words = words[starts[0] + 1 :]
    taken = []
    for w in words:
        if w.startswith("-") or w in ("&&", "||", ";", "|"):
            break
        taken.append(w)
    return taken


def resolve_command(root_command, words: list[str]):
    """Follow ``words`` down a click/Typer command tree; returns ``(command, words used)``."""
    cmd, used = root_command, []
    for w in words:
        sub = (getattr(cmd, "commands", None) or {}).get(w)
        if sub is None:
            break
        cmd, used = sub, [*used, w]
    return cmd, used


def callback_module(command) -> str | None:
    """The module that defines a command's callback (unwrapping Typer's wrapper)."""
    import inspect

    cb = getattr(command, "callback", None)
    return inspect.unwrap(cb).__module__ if cb is not None else None


def covered(path: str, deps: Iterable[str]) -> bool:
    """Whether ``path`` (repo-relative, POSIX) is a declared dep or lies inside a declared directory dep."""
    for d in deps:
        d = d.removeprefix("./").rstrip("/")
        if path == d or path.startswith(d + "/"):
            return True
    return False


def missing_deps(files: Iterable[str], deps: Iterable[str]) -> list[str]:
    """The files not covered by any of ``deps``, sorted."""
    deps = list(deps)
    return sorted(f for f in files if not covered(f, deps))


def stage_closure_files(
    stage: Mapping, root_command, graph: Mapping[str, set[str]], modules: Mapping[str, Path]
) -> list[str]:
    """Repo-relative files of every module the stage's specdenoise command can import (of the
    model families, only the one it names with ``--model``, if it names one: :func:`for_family`).

    Raises ``LookupError`` when the command does not name a specdenoise command with a callback.
    """
    words = cli_words(stage["cmd"])
    command, used = resolve_command(root_command, words)
    module = callback_module(command) if used else None
    if not used or module is None or hasattr(command, "commands"):
        raise LookupError(f"'{stage['cmd'][:80]}': no specdenoise command found (words {words})")
    if module not in modules:
        raise LookupError(f"'{' '.join(used)}': callback module {module} is not in {SRC}")
    family, families = named_family(stage["cmd"]), family_modules()
    top_graph = for_family(build_graph(modules, module_level_only=True), family, families)
    return sorted(rel(modules[m]) for m in runtime_closure(for_family(graph, family, families), top_graph, module))


def minimal_deps(
    files: Iterable[str], modules: Mapping[str, Path], threshold: float = 0.99, package_dir: Path = SRC / PACKAGE
) -> list[str]:
    """Few src paths that cover ``files``: a sub-package folder where more than ``threshold`` of its
    modules (empty ``__init__.py`` files not counted) are in ``files``, else the files themselves.

    Folders are chosen top down; the package folder itself (``package_dir``) is never chosen.
    """
    files = set(files)
    all_files = sorted(rel(p) for p in modules.values() if p.stat().st_size > 0 or p.name != "__init__.py")
    root = rel(package_dir)

    def cover(folder: str) -> list[str]:
        inside = [f for f in all_files if f.startswith(folder + "/")]
        hit = [f for f in inside if f in files]
        if not hit:
            return []
        if folder != root and len(hit) / len(inside) > threshold:
            return [folder]
        out = [f for f in hit if "/" not in f[len(folder) + 1 :]]
        subs = sorted(
            {folder + "/" + f[len(folder) + 1 :].split("/")[0] for f in inside if "/" in f[len(folder) + 1 :]}
        )
        for sub in subs:
            out += cover(sub)
        return out

    result = cover(root)
    # anything not under package_dir (or an empty __init__.py in ``files``) is kept as it is
    result += sorted(f for f in files if not covered(f, result))
    return sorted(result)


if __name__ == "__main__":  # a quick look: python tests/structure/importgraph.py
    g = build_graph()
    print(f"{len(g)} modules, {sum(map(len, g.values()))} edges; cycle: {find_cycle(g)}", file=sys.stderr)
