"""Tests of the package layout: import graph, module sizes, DVC deps (helpers: importgraph, print_deps)."""
