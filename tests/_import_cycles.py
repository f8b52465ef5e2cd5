"""Print the runtime import cycles of the `conformance` package found on sys.path, one JSON list per cycle.

Imports inside functions count (they are how cycles hide); imports under `if TYPE_CHECKING:` do not (they never run).
Run with PYTHONPATH naming the tree to check: `python -m tests._import_cycles` or `python tests/_import_cycles.py`.
"""

from __future__ import annotations

import json
import sys

import grimp


def cycles(package: str = "conformance") -> list[list[str]]:
    graph = grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for module in modules:
        if module not in index:
            visit(module)
    return found


if __name__ == "__main__":
    for cycle in cycles():
        print(json.dumps(cycle))
