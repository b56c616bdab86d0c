#!/usr/bin/env python3
"""Checks the shape ARCHITECTURE.md promises, so a refactor that breaks it fails CI.

- no circle of more than three source files importing each other within a crate
  (a file "imports" another when it names `crate::...`/`super::...` paths that resolve to it);
- no source file over 500 lines of non-test code (everything from the first `#[cfg(test)]`
  at column 0 on is test code).

Usage: layout_check.py [--graph]   (--graph prints every crate's file-level edges)
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["cache", "contract", "service", "loadtest", "otlp-receiver"]
MAX_CIRCLE = 3
MAX_LINES = 500


def modules(src):
    """Maps module path tuples (e.g. ('store', 'redis')) to their file."""
    found = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod" or rel == "lib.rs":
                parts = parts[:-1]
            elif rel == "main.rs" and os.path.exists(os.path.join(src, "lib.rs")):
                continue  # the binary uses the library by its crate name, not `crate::`
            elif rel == "main.rs":
                parts = []
            found[tuple(parts)] = rel
    return found


def non_test(text):
    cut = re.search(r"^#\[cfg\(test\)\]", text, re.M)
    return text[: cut.start()] if cut else text


def code(text):
    """Non-test code without comments: a doc link is not a dependency."""
    return re.sub(r"//[^\n]*", "", non_test(text))


def reexports(text, here, children):
    """`pub use` items of a module, by name -> the full path they re-export."""
    out = {}
    for m in re.finditer(r"\bpub(?:\([\w:]+\))?\s+use\s+([^;]+);", text, re.S):
        for path in expand(re.sub(r"\s+", "", m.group(1))):
            alias = None
            if "as" in path.split("::")[-1] and re.search(r"\bas\b", path):
                path, alias = re.split(r"as(?=\w+$)", path, maxsplit=1)
            parts = path.split("::")
            if parts[0] in children:
                parts = ["self"] + parts
            name = alias or parts[-1]
            if parts[-1] == "self":
                parts, name = parts[:-1], alias or parts[-2]
            out[name] = (list(here), "::".join(parts))
    return out


def uses(text, children):
    """Every `crate::a::b` / `super::a` path the code names, `use` groups expanded, re-exports
    (`pub use`) left out: a module that re-exports an item is a facade, not a user of it."""
    private = re.sub(r"\bpub(?:\([\w:]+\))?\s+use\s+[^;]+;", "", text, flags=re.S)
    for m in re.finditer(r"\buse\s+(\w+)::([^;]+);", private, re.S):
        if m.group(1) in children:
            yield from expand("self::" + m.group(1) + "::" + re.sub(r"\s+", "", m.group(2)))
    for m in re.finditer(r"\buse\s+((?:crate|super|self)(?:::super)*::[^;]+);", private, re.S):
        yield from expand(re.sub(r"\s+", "", m.group(1)))
    for m in re.finditer(r"(?<![:\w])((?:crate|super)(?:::super)*(?:::\w+)+)", private):
        yield m.group(1)


def expand(path):
    brace = path.find("{")
    if brace < 0:
        yield path
        return
    head, body = path[:brace], path[brace + 1 : path.rfind("}")]
    depth, start, items = 0, 0, []
    for i, c in enumerate(body):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(body[start:i])
            start = i + 1
    items.append(body[start:])
    for item in items:
        if item:
            yield from expand(head + item)


def absolute(path, here):
    parts = path.replace(" ", "").split("::")
    if parts[0] == "crate":
        return parts[1:]
    base, rest = list(here), parts
    # `super` in a/b.rs (module a::b) is module a; in a/mod.rs (module a) it is the root.
    while rest and rest[0] in ("super", "self"):
        if rest[0] == "super":
            base = base[:-1]
        rest = rest[1:]
    return base + rest


def resolve(path, here, mods, exports, depth=0):
    """The file that defines what `path` names, following re-exports."""
    target = absolute(path, here)
    n = len(target)
    while n and tuple(target[:n]) not in mods:
        n -= 1
    module = tuple(target[:n])
    if module not in mods:
        return None
    rest = target[n:]
    if rest and depth < 8:
        reexport = exports.get(module, {}).get(rest[0])
        if reexport:
            src_here, src_path = reexport
            return resolve(src_path, src_here, mods, exports, depth + 1)
    return mods[module]


def graph(src):
    mods = modules(src)
    texts = {here: code(open(os.path.join(src, f)).read()) for here, f in mods.items()}
    kids = {
        here: {m[-1] for m in mods if len(m) == len(here) + 1 and m[: len(here)] == here}
        for here in mods
    }
    exports = {here: reexports(texts[here], here, kids[here]) for here in mods}
    edges = {f: set() for f in mods.values()}
    for here, f in mods.items():
        for p in uses(texts[here], kids[here]):
            t = resolve(p, here, mods, exports)
            if t and t != f:
                edges[f].add(t)
    return edges


def circles(edges):
    """Tarjan's strongly connected components of more than one file."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    show = "--graph" in sys.argv
    failures = 0
    for crate in CRATES:
        src = os.path.join(ROOT, crate, "src")
        edges = graph(src)
        if show:
            for f in sorted(edges):
                print(f"{crate}/src/{f} -> {', '.join(sorted(edges[f])) or '-'}")
        for comp in circles(edges):
            verdict = "FAIL" if len(comp) > MAX_CIRCLE else "ok"
            failures += verdict == "FAIL"
            print(f"{verdict}: {crate}: {len(comp)} files import each other: {', '.join(comp)}")
        for f in sorted(edges):
            lines = non_test(open(os.path.join(src, f)).read()).count("\n")
            if lines > MAX_LINES:
                failures += 1
                print(f"FAIL: {crate}/src/{f} has {lines} lines of non-test code (limit {MAX_LINES})")
    if failures:
        print(f"layout: {failures} failure(s)")
        sys.exit(1)
    print(f"ok: no circle of more than {MAX_CIRCLE} files, no file over {MAX_LINES} non-test lines")


if __name__ == "__main__":
    main()
