"""Print, for each DVC stage, the src paths its command can import: the ``deps:`` that
``tests/structure/test_dvc_deps.py`` asks for.

    .venv/bin/python tests/structure/print_deps.py [--threshold 0.99] [--files] [--missing] [--rewrite OUT]

A package folder is printed instead of its files when more than ``--threshold`` of its
(non-empty) modules are needed (by default all of them: a folder dep reruns the stage on an edit
of any file in it, so a stage that trains the AE must not list the posterior's files through it;
``--files``: never); stages of one ``matrix:`` are printed once.
``--missing`` prints only what each stage's current deps lack. Data deps (inputs) are not
printed: keep those from dvc.yaml. ``--rewrite OUT`` writes dvc.yaml to OUT (``dvc.yaml`` to
replace it) with each stage's ``src/`` deps replaced by the printed ones, everything else kept
as it is (round trip with ruamel.yaml, comments and folded commands included).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import typer  # noqa: E402
from importgraph import (  # noqa: E402
    ROOT,
    build_graph,
    discover,
    dvc_stages,
    minimal_deps,
    missing_deps,
    stage_closure_files,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--threshold", type=float, default=0.99, help="fraction of a folder's modules above which the folder is printed"
    )
    ap.add_argument("--files", action="store_true", help="print files only, never folders")
    ap.add_argument("--missing", action="store_true", help="print only the files each stage's deps miss")
    ap.add_argument("--rewrite", type=Path, metavar="OUT", help="write dvc.yaml with the src deps replaced to OUT")
    args = ap.parse_args(argv)

    from specdenoise.cli import app

    root = typer.main.get_command(app)
    modules = discover()
    graph = build_graph(modules)
    by_base: dict[str, dict] = {}
    for name, stage in dvc_stages().items():
        entry = by_base.setdefault(stage["base"], {"names": [], "files": set(), "missing": set(), "error": None})
        entry["names"].append(name)
        try:
            files = stage_closure_files(stage, root, graph, modules)
        except LookupError as exc:
            entry["error"] = str(exc)
            continue
        entry["files"].update(files)
        entry["missing"].update(missing_deps(files, stage["deps"]))
    status = 0
    printed: dict[str, list[str]] = {}
    for base, entry in by_base.items():
        label = base if entry["names"] == [base] else f"{base}  # {len(entry['names'])} matrix stages"
        print(f"{label}:")
        if entry["error"]:
            print(f"  # {entry['error']}")
            status = 1
            continue
        if args.missing:
            paths = sorted(entry["missing"])
        else:
            paths = sorted(entry["files"]) if args.files else minimal_deps(entry["files"], modules, args.threshold)
        printed[base] = paths
        for p in paths:
            print(f"  - {p}")
    if args.rewrite:
        if args.missing or status:
            print("--rewrite needs every stage resolved and is not combined with --missing", file=sys.stderr)
            return 2
        rewrite(printed, args.rewrite)
        print(f"wrote {args.rewrite}", file=sys.stderr)
    return status


def rewrite(src_deps: dict[str, list[str]], out: Path, dvc_yaml: Path = ROOT / "dvc.yaml") -> None:
    """dvc.yaml with each stage's ``src/`` deps replaced by ``src_deps[stage]`` (other deps kept, first)."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    doc = yaml.load(dvc_yaml.read_text())
    for base, stage in doc["stages"].items():
        if base not in src_deps:
            continue
        body = stage["do"] if "foreach" in stage else stage
        deps = body.get("deps") or []
        keep = [d for d in deps if not (isinstance(d, str) and d.startswith("src/"))]
        new = keep + [d for d in src_deps[base] if d not in keep]
        if "deps" in body:
            body["deps"].clear()
            body["deps"].extend(new)
        else:
            body["deps"] = new
    with open(out, "w") as fh:
        yaml.dump(doc, fh)


if __name__ == "__main__":
    raise SystemExit(main())
