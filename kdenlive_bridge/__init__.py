"""Kdenlive bridge: a companion window that scores a ``.kdenlive`` project file.

Kdenlive has no Python plugin API, so :mod:`kdenlive_bridge.panel` works on the project file:
it shows the cuts and scenes that ``emsync_plugin.timeline.read_cuts`` finds, lets the editor set
mood overrides and the engine, runs ``emsync_plugin.pipeline.score`` in a worker thread and
offers to open the scored project in Kdenlive. Start it with ``python -m kdenlive_bridge
[PROJECT]`` or :func:`kdenlive_bridge.panel.main`. Needs PySide6 (``pip install emsync[gui]``).
"""


def main(argv=None) -> int:
    """Start the panel (imports PySide6 only when called)."""
    from .panel import main as _main

    return _main(argv)
