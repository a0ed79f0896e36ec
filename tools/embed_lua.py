#!/usr/bin/env python3
"""Writes a C file holding lua/gl/**/*.lua as byte arrays, for gl_lua_modules[]."""
import os
import sys


def module_name(path):
    rel = os.path.relpath(path, LUA_ROOT).replace(os.sep, "/")[: -len(".lua")]
    if rel.endswith("/init"):
        rel = rel[: -len("/init")]
    return rel.replace("/", "."), rel


out_path, LUA_ROOT, *files = sys.argv[1:]
lines = ['#include "core.h"', ""]
entries = []
for i, path in enumerate(sorted(files)):
    name, rel = module_name(path)
    data = open(path, "rb").read()
    body = ",".join(str(b) for b in data)
    lines.append(f"static const unsigned char m{i}[] = {{{body}}};")
    chunk = os.path.relpath(path, LUA_ROOT).replace(os.sep, "/")
    entries.append(f'    {{"{name}", "@{chunk}", m{i}, {len(data)}}},')
lines.append("const gl_lua_module gl_lua_modules[] = {")
lines += entries
lines.append("    {0, 0, 0, 0},")
lines.append("};")
with open(out_path, "w") as f:
    f.write("\n".join(lines) + "\n")
