"""Generate the catalogue, family, paper and status pages at build time (mkdocs-gen-files).

Everything comes from ``specs/`` and ``reproductions/`` through :mod:`zoo.docs`; nothing generated
is kept in the repository. No torch is imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from zoo import docs
from zoo.catalogue import load_all

entries = load_all()
for path, content in docs.generate(entries).items():
    if isinstance(content, bytes):
        with mkdocs_gen_files.open(path, "wb") as f:
            f.write(content)
    else:
        with mkdocs_gen_files.open(path, "w", encoding="utf-8") as f:
            f.write(content)
