#!/usr/bin/env python3
"""check-layers.py — the folders of src/ are layers: an include never goes
upward, two folders of one level never include each other, and no chain of
includes between files comes back to where it started.

Run by `make test`; exits 1 and names each offending include."""
import os
import re
import sys

# Bottom to top. Folders on one line are peers: neither may include the other.
LAYERS = [
    ["core"],
    ["net"],
    ["store"],
    ["aaa"],
    ["ingest"],
    ["http", "socket", "mqtt"],
    ["server"],
    ["."],          # src/main.c, the command line
]
LEVEL = {folder: i for i, peers in enumerate(LAYERS) for folder in peers}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folder_of(path):
    return os.path.dirname(path) or "."


def main(src):
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith((".c", ".h")):
                rel = os.path.relpath(os.path.join(root, name), src)
                with open(os.path.join(src, rel), encoding="utf-8") as f:
                    files[rel] = INCLUDE.findall(f.read())
    problems = []
    for rel, includes in sorted(files.items()):
        mine = folder_of(rel)
        if mine not in LEVEL:
            problems.append(f"{rel}: folder '{mine}' is in no layer (scripts/check-layers.py)")
            continue
        for inc in includes:
            target = inc if "/" in inc else os.path.join(mine, inc)
            target = os.path.normpath(target)
            theirs = folder_of(target)
            if target not in files:
                problems.append(f"{rel}: includes \"{inc}\", which is not under src/")
            elif theirs not in LEVEL:
                continue
            elif LEVEL[theirs] > LEVEL[mine]:
                problems.append(f"{rel}: includes \"{inc}\", a layer above ({theirs} over {mine})")
            elif LEVEL[theirs] == LEVEL[mine] and theirs != mine:
                problems.append(f"{rel}: includes \"{inc}\", a peer layer ({theirs} beside {mine})")
    problems += cycles(files)
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} include(s) break the layers")
        return 1
    print(f"check-layers: {len(files)} files, every include goes down or sideways within a folder, no cycle")
    return 0


def cycles(files):
    """Every include cycle between files, each reported once."""
    graph = {}
    for rel, includes in files.items():
        mine = folder_of(rel)
        graph[rel] = [os.path.normpath(i if "/" in i else os.path.join(mine, i)) for i in includes]
    state, found, stack = {}, [], []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                loop = stack[stack.index(nxt):] + [nxt]
                found.append("include cycle: " + " -> ".join(loop))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "src"))
