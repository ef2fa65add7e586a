#!/usr/bin/env python3
"""Checks docs/libsel4vm-mapping.md against include/sel4vm: every function a header declares has
a row, every row names a declared function, each status is known, and the Counts line agrees.
    check_mapping.py SOURCE_DIR"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
declared = {}
# A declaration: a return type and a name at the start of a line, then "(" (possibly multi-line).
decl = re.compile(r"^(?!typedef|#|\s|/|\*)[A-Za-z_][\w \*]*?[\s\*]([A-Za-z_]\w*)\s*\(", re.M)
for header in sorted((root / "include/sel4vm").rglob("*.h")):
    for name in decl.findall(header.read_text()):
        declared[name] = header.relative_to(root)

doc = (root / "docs/libsel4vm-mapping.md").read_text()
rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", doc, re.M))
statuses = {"ported": 0, "ported\\*": 0, "replaced": 0, "n/a": 0, "guestvm": 0}
errors = []
for name, header in sorted(declared.items()):
    if name not in rows:
        errors.append(f"{header} declares {name}, which the mapping table does not list")
for name, status in rows.items():
    if name not in declared:
        errors.append(f"the table lists {name}, which no header declares")
    if status not in statuses:
        errors.append(f"{name}: unknown status {status!r}")
    else:
        statuses[status] += 1
counts = re.search(r"Counts: ported (\d+), ported\\\* (\d+), replaced (\d+), n/a (\d+), "
                   r"guestvm (\d+)\.", doc)
if not counts:
    errors.append("no Counts line")
else:
    want = [int(c) for c in counts.groups()]
    have = list(statuses.values())
    if want != have:
        errors.append(f"Counts line says {want}, the table has {have}")
for e in errors:
    print(e)
print(f"{len(declared)} functions declared, {len(rows)} rows, counts {statuses}")
sys.exit(1 if errors else 0)
