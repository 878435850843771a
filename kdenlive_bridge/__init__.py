"""Kdenlive bridge: a companion window that scores a ``.kdenlive`` project file.

Kdenlive has no Python plugin API, so the window works on the project file: :mod:`.panel` is the
window, :mod:`.table` its scene table (mood overrides), :mod:`.settings` the score settings box
and :mod:`.jobs` the work it runs off the GUI thread (``emsync_plugin.pipeline.analyze`` and
``score``), :mod:`.project_watch` how it follows the project Kdenlive has open, :mod:`.preview`
the score's audio preview and :mod:`.launch` the command line. Start it with
``emsync-kdenlive-panel [PROJECT]`` (or ``python -m kdenlive_bridge``). Needs PySide6
(``pip install 'emsync[gui]'``); without it the command says so in one line.
"""


def main(argv=None) -> int:
    """Start the panel (imports PySide6 only when the window is wanted)."""
    from .launch import main as _main

    return _main(argv)
