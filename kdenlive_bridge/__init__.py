"""Kdenlive bridge: a companion window that scores a ``.kdenlive`` project file.

Kdenlive has no Python plugin API, so the window works on the project file: :mod:`.panel` is the
window, :mod:`.table` its scene table (mood overrides), :mod:`.settings` the score settings box
and :mod:`.jobs` the work it runs off the GUI thread (``emsync_plugin.pipeline.analyze`` and
``score``). Start it with ``python -m kdenlive_bridge [PROJECT]`` or :func:`kdenlive_bridge.panel.main`.
Needs PySide6 (``pip install emsync[gui]``).
"""


def main(argv=None) -> int:
    """Start the panel (imports PySide6 only when called)."""
    from .panel import main as _main

    return _main(argv)
