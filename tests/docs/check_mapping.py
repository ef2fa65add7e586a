#!/usr/bin/env python3
"""Checks docs/libsel4vm-mapping.md against include/sel4vm: every function and every type a
header declares has a row, every row names something declared, each status is known, and the
"Counts:" (functions) and "Type counts:" lines agree with the table.
    check_mapping.py SOURCE_DIR"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
headers = sorted((root / "include/sel4vm").rglob("*.h"))

# A function: a return type and a name at the start of a line, then "(" (possibly multi-line).
function = re.compile(r"^(?!typedef|#|\s|/|\*)[A-Za-z_][\w \*]*?[\s\*]([A-Za-z_]\w*)\s*\(", re.M)
# A type: a one-line typedef, the name after a typedef'd body, a function-pointer typedef, or a
# struct defined without a typedef name.
type_names = [
    re.compile(r"^typedef\s+(?:struct|enum|union)?\s*\w[\w ]*?[\s\*]+(\w+);\s*$", re.M),
    re.compile(r"^\}\s*(\w+);", re.M),
    re.compile(r"^typedef [^;]*?\(\s*\*\s*(\w+)\s*\)", re.M),
]
aliased_struct = re.compile(r"^typedef\s+struct\s+(\w+)\s", re.M)
struct_definition = re.compile(r"^struct\s+(\w+)\s*\{", re.M)

functions, types, aliased = {}, {}, set()
for header in headers:
    text = header.read_text()
    where = header.relative_to(root)
    for name in function.findall(text):
        functions[name] = where
    for pattern in type_names:
        for name in pattern.findall(text):
            types.setdefault(name, where)
    aliased |= set(aliased_struct.findall(text))
for header in headers:
    for name in struct_definition.findall(header.read_text()):
        if name not in aliased:
            types.setdefault(name, header.relative_to(root))

doc = (root / "docs/libsel4vm-mapping.md").read_text()
rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", doc, re.M))
names = ["ported", "ported\\*", "replaced", "n/a", "guestvm"]
counted = {"function": dict.fromkeys(names, 0), "type": dict.fromkeys(names, 0)}
errors = []
for kind, declared in (("function", functions), ("type", types)):
    for name, header in sorted(declared.items()):
        if name not in rows:
            errors.append(f"{header} declares {kind} {name}, which the mapping table does not list")
for name, status in rows.items():
    kind = "function" if name in functions else "type" if name in types else None
    if kind is None:
        errors.append(f"the table lists {name}, which no header declares")
    elif status not in counted[kind]:
        errors.append(f"{name}: unknown status {status!r}")
    else:
        counted[kind][status] += 1
for kind, label in (("function", "Counts"), ("type", "Type counts")):
    line = re.search(label + r": ported (\d+), ported\\\* (\d+), replaced (\d+), n/a (\d+), "
                     r"guestvm (\d+)\.", doc)
    if not line:
        errors.append(f"no {label} line")
        continue
    want = [int(c) for c in line.groups()]
    have = list(counted[kind].values())
    if want != have:
        errors.append(f"{label} line says {want}, the table has {have}")
for e in errors:
    print(e)
print(f"{len(functions)} functions and {len(types)} types declared, {len(rows)} rows; "
      f"functions {counted['function']}, types {counted['type']}")
sys.exit(1 if errors else 0)
