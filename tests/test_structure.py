"""Static architecture checks on the `audiogan` package (ast only: nothing is imported).

Rule 1 - no import cycles among audiogan's modules. Every `import`/`from ... import` counts,
at top level or inside a function; only `if TYPE_CHECKING:` bodies are skipped. Relative
imports are resolved. `from audiogan.x import name` is an edge to `audiogan.x.name` when that
is a module of the tree, else to `audiogan.x`; the implicit import of parent packages is not
an edge. Each cycle is printed as a chain of modules with the file:line of every edge.
(Modules loaded by name through importlib, e.g. sweep_trial's LOOP string, are not edges.)

Rule 2 - only `audiogan/cluster/compat.py` may touch private Ray/Optuna API:
  (a) no import (TYPE_CHECKING ones included) of a ray/optuna module path with a private
      (`_x`) component, e.g. `ray._private...`, `ray.train.v2._internal...`, nor of a private
      name from a public module;
  (b) types are unknown statically, so every access `expr._name` (single underscore, not a
      dunder; `getattr(x, "_name")` too) is a violation unless audiogan itself explains it:
      (i)   `expr` is `self`/`cls`/`super()` in a plain class (no Ray/Optuna base, traced
            through the imports and through audiogan's own classes) and `_name` is assigned or
            defined in that class, or is explained by (iv);
      (ii)  `expr` is `self`/`cls` in a Ray/Optuna subclass and `_name` is the subclass's own:
            assigned on self in its `__init__`, or defined in its class body. Nothing else (the
            base may use the name too); `super()._name` there is always a violation;
      (iii) `expr` names an audiogan module that defines `_name` at top level;
      (iv)  `_name` is defined somewhere in audiogan as a function or class (methods of
            Ray/Optuna subclasses excluded) or is assigned on self in a plain class;
      (v)   `expr` names a module bound by `import mod` from outside ray/optuna/audiogan
            (`os._exit`): not a Ray/Optuna object.
      Defining a method `_name` in a Ray/Optuna subclass is a violation too: it may override
      (or later collide with) a private base method. There is no allow-list: audiogan has no
      namedtuples today (if `_replace`/`_asdict` appear, allow them explicitly, saying why).
Rule 3 - this file obeys rule 2 itself (it only mentions the patterns in strings) and
imports no ray/optuna/audiogan module.
"""

from __future__ import annotations

import ast
from collections import deque
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPAT = "audiogan/cluster/compat.py"
THIRD_PARTY = ("ray", "optuna")
FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def third_party(dotted: str) -> bool:
    return dotted.partition(".")[0] in THIRD_PARTY


@lru_cache(maxsize=None)
def modules() -> dict[str, Path]:
    """Module name -> file for every .py under audiogan/ (`__init__.py` is the package)."""
    out = {}
    for path in sorted((ROOT / "audiogan").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


@lru_cache(maxsize=None)
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def imports(node: ast.AST, skip_type_checking: bool = True):
    """Every Import/ImportFrom under `node`, function bodies included."""
    for child in ast.iter_child_nodes(node):
        if (skip_type_checking and isinstance(child, ast.If)
                and "TYPE_CHECKING" in ast.unparse(child.test)):
            for sub in child.orelse:  # only the `else:` branch runs
                yield from imports(ast.Module(body=[sub], type_ignores=[]))
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        yield from imports(child, skip_type_checking)


def source_module(module: str | None, node: ast.ImportFrom) -> str:
    """The absolute module that `from X import ...` in `module` reads from."""
    if not node.level:
        return node.module or ""
    package = module if modules()[module].name == "__init__.py" else module.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0]
    return f"{base}.{node.module}" if node.module else base


def import_graph() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) -> ["path:line", ...] for edges between audiogan modules."""
    mods, edges = modules(), {}
    for mod, path in mods.items():
        for node in imports(parse(path)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                src = source_module(mod, node)
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in mods else src for a in node.names]
            for target in targets:
                loc = f"{rel(path)}:{node.lineno}"
                if target in mods and target != mod and loc not in edges.setdefault((mod, target), []):
                    edges[mod, target].append(loc)
    return edges


def strongly_connected(nodes: list[str], edges) -> list[list[str]]:
    """Tarjan's algorithm; components of more than one module (a self-import is no cycle)."""
    succ = {n: sorted(b for a, b in edges if a == n) for n in nodes}
    index, low, stack, out = {}, {}, [], []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = [stack.pop()]
            while comp[-1] != v:
                comp.append(stack.pop())
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in nodes:
        if n not in index:
            visit(n)
    return out


def cycles_in(comp: list[str], edges) -> list[list[str]]:
    """For each edge u->v inside the component, the shortest cycle u->v->...->u (deduplicated)."""
    inside = sorted((a, b) for a, b in edges if a in comp and b in comp)
    seen, out = set(), []
    for u, v in inside:
        prev, queue = {v: None}, deque([v])
        while queue and u not in prev:
            x = queue.popleft()
            for b in (b for a, b in inside if a == x and b not in prev):
                prev[b] = x
                queue.append(b)
        path = [u]
        while path[-1] != v:
            path.append(prev[path[-1]])
        cycle = [u] + path[::-1]
        if frozenset(zip(cycle, cycle[1:])) not in seen:
            seen.add(frozenset(zip(cycle, cycle[1:])))
            out.append(cycle)
    return out


def test_no_import_cycles():
    edges, lines = import_graph(), []
    for comp in strongly_connected(sorted(modules()), edges):
        lines.append(f"import cycle among {', '.join(comp)}:")
        for cycle in cycles_in(comp, edges):
            lines.append("  " + " -> ".join(cycle))
            lines += [f"      {a} -> {b}  at {', '.join(edges[a, b])}"
                      for a, b in zip(cycle, cycle[1:])]
    if lines:
        pytest.fail("\n".join(lines), pytrace=False)


def bindings(tree: ast.Module, module: str | None) -> dict[str, tuple[str, bool]]:
    """Local name -> (dotted origin, bound by a plain `import`) for every import in a file."""
    out = {}
    for node in imports(tree, skip_type_checking=False):
        for a in node.names:
            if isinstance(node, ast.Import):
                bound = a.name if a.asname else a.name.partition(".")[0]
                out[a.asname or bound] = (bound, True)
            else:
                out[a.asname or a.name] = (f"{source_module(module, node)}.{a.name}", False)
    return out


def classes():
    """(module, ClassDef, bindings) for every class in audiogan."""
    for mod, path in modules().items():
        binds = bindings(parse(path), mod)
        yield from ((mod, n, binds) for n in ast.walk(parse(path)) if isinstance(n, ast.ClassDef))


@lru_cache(maxsize=None)
def ray_classes() -> frozenset[str]:
    """"module.Class" of every audiogan class deriving (transitively) from a Ray/Optuna class."""
    found: set[str] = set()
    while True:
        before = len(found)
        for mod, cls, binds in classes():
            for base in map(ast.unparse, cls.bases):
                root, dot, rest = base.partition(".")
                dotted = (binds[root][0] if root in binds else f"{mod}.{root}") + dot + rest
                if third_party(dotted) or dotted in found:
                    found.add(f"{mod}.{cls.name}")
        if len(found) == before:
            return frozenset(found)


def self_assigned(nodes) -> set[str]:
    return {t.attr for n in nodes for t in ast.walk(n) if isinstance(t, ast.Attribute)
            and isinstance(t.ctx, ast.Store) and ast.unparse(t.value) in ("self", "cls")}


def body_names(body) -> set[str]:
    """Names a class or module body defines: functions, classes, assignment targets."""
    out = {n.name for n in body if isinstance(n, (*FUNCS, ast.ClassDef))}
    for n in body:
        targets = getattr(n, "targets", None) or [getattr(n, "target", None)]  # (Ann/Aug)Assign
        out |= {t.id for tg in targets if tg for t in ast.walk(tg) if isinstance(t, ast.Name)}
    return out


@lru_cache(maxsize=None)
def package_names() -> frozenset[str]:
    """(iv): functions/classes anywhere in audiogan, and what plain classes assign on self."""
    out, ray_methods = set(), set()
    for mod, cls, _ in classes():
        if f"{mod}.{cls.name}" in ray_classes():
            ray_methods |= {id(n) for n in cls.body}
        else:
            out |= self_assigned(cls.body) | body_names(cls.body)
    for path in modules().values():
        out |= {n.name for n in ast.walk(parse(path))
                if isinstance(n, (*FUNCS, ast.ClassDef)) and id(n) not in ray_methods}
    return frozenset(out)


def private_access_violations(path: Path, module: str | None) -> list[str]:
    tree, where, mods, out = parse(path), rel(path), modules(), set()
    binds = bindings(tree, module)
    for node in imports(tree, skip_type_checking=False):  # (a)
        for a in node.names:
            dotted = a.name if isinstance(node, ast.Import) else f"{node.module}.{a.name}"
            relative = getattr(node, "level", 0)
            if not relative and third_party(dotted) and any(map(is_private, dotted.split("."))):
                out.add((node.lineno, f"imports private {dotted}"))

    def check(attr: str, expr: ast.expr, line: int, cls) -> None:  # (b)
        name = expr.id if isinstance(expr, ast.Name) else None
        is_super = isinstance(expr, ast.Call) and ast.unparse(expr.func) == "super"
        if cls and (name in ("self", "cls") or is_super):
            cls_name, is_ray, own = cls
            if is_ray and (is_super or attr not in own):
                why = "" if is_super else (f" (not assigned in {cls_name}.__init__ "
                                           "nor defined in the class body)")
                out.add((line, f"{ast.unparse(expr)}.{attr}: private attribute of {cls_name}'s "
                               f"Ray/Optuna base{why}"))
            if is_ray or attr in own or attr in package_names():
                return
        else:
            origin, by_import = binds.get(name, ("", False))
            if (attr in package_names()
                    or (origin in mods and attr in body_names(parse(mods[origin]).body))  # (iii)
                    or (by_import and origin.split(".")[0] not in (*THIRD_PARTY, "audiogan"))):  # (v)
                return
        out.add((line, f"{ast.unparse(expr)}.{attr}: private attribute not defined by audiogan"))

    def visit(node: ast.AST, cls) -> None:
        if isinstance(node, ast.ClassDef):
            is_ray = f"{module}.{node.name}" in ray_classes()
            init = [n for n in node.body if isinstance(n, FUNCS) and n.name == "__init__"]
            own = body_names(node.body) | self_assigned(init if is_ray else node.body)
            cls = (node.name, is_ray, own)
            out.update((n.lineno, f"{node.name}.{n.name}: private method defined in a Ray/Optuna "
                                  "subclass (may override a private base method)")
                       for n in node.body if is_ray and isinstance(n, FUNCS) and is_private(n.name))
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            check(node.attr, node.value, node.lineno, cls)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) > 1
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                and isinstance(node.args[1], ast.Constant) and is_private(str(node.args[1].value))):
            check(str(node.args[1].value), node.args[0], node.lineno, cls)
        for child in ast.iter_child_nodes(node):
            visit(child, cls)

    visit(tree, None)
    return [f"{where}:{line}: {what}" for line, what in sorted(out)]


def test_no_private_ray_optuna_access_outside_compat():
    found = [v for mod, path in modules().items() if rel(path) != COMPAT
             for v in private_access_violations(path, mod)]
    if found:
        pytest.fail("\n".join(found), pytrace=False)


def test_this_file_obeys_rule_2_and_imports_nothing_it_checks():
    assert private_access_violations(Path(__file__).resolve(), None) == []
    assert not [o for o, _ in bindings(parse(Path(__file__).resolve()), None).values()
                if third_party(o) or o.startswith("audiogan")]
