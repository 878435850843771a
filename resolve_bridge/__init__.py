"""DaVinci Resolve bridge: the "EMSYNC Score" script and its installer.

``emsync_score.py`` is the script a Resolve user runs from Workspace ▸ Scripts ▸ Utility: it
exports the current timeline, calls :func:`emsync_plugin.pipeline.score` and puts the WAV back on
an audio track named "EMSYNC Score". ``install.py`` copies it into Resolve's per-user Scripts
folder. No music or timeline logic lives here.
"""
