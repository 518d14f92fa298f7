"""The web console: the static files a browser loads from ``/`` (``static/``), plain
HTML, CSS and JavaScript modules with no build step. They hold no data; every view reads
the node's own API with the node's token. ``node.server.console`` serves them.

May import: nothing of this project but the modules here.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def static_files() -> Traversable:
    """The folder of the console's files, wherever the package is installed."""
    return resources.files(__name__) / "static"
