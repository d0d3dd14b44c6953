"""mkdocs hook: the site navigation, generated from the catalogue (see :func:`zoo.docs.nav`)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])


def on_config(config):
    # mkdocs restores sys.path after loading a hook, so make the repository importable here.
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from zoo.docs import nav

    config["nav"] = nav()
    return config
