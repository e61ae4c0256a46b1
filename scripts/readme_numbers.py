"""Put a run's generated headline numbers (``<run>/headline.md``) into the README.

    python scripts/readme_numbers.py runs/demo README.md

Replaces the block between the ``<!-- numbers:<run name> -->`` and ``<!-- /numbers -->``
markers, so the README quotes exactly what a run produced.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main(run: str, readme: str) -> None:
    name = Path(run).name
    block = (Path(run) / "headline.md").read_text().strip()
    path = Path(readme)
    text = path.read_text()
    pattern = re.compile(rf"(<!-- numbers:{re.escape(name)} -->\n).*?(\n<!-- /numbers -->)", re.S)
    if not pattern.search(text):
        sys.exit(f"{readme} has no <!-- numbers:{name} --> ... <!-- /numbers --> block")
    path.write_text(pattern.sub(lambda m: m.group(1) + block + m.group(2), text))


if __name__ == "__main__":
    main(*sys.argv[1:3])
