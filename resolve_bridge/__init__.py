"""DaVinci Resolve bridge: the "EMSYNC Score" script and its installer.

``emsync_score.py`` is the script a Resolve user runs from Workspace ▸ Scripts ▸ Utility and
``install.py`` copies it into Resolve's per-user Scripts folder. The script is thin: the run is
:mod:`.scoring` (export the current timeline, call :func:`emsync_plugin.pipeline.score`, put the WAV
on an audio track named "EMSYNC Score"), with the dialog in :mod:`.ui`, Resolve's API in
:mod:`.resolve`, the editor's options in :mod:`.options`, and emsync reached through :mod:`.worker`
(in-process, or in a subprocess when Resolve's Python cannot import it) and :mod:`.core`.
No music or timeline logic lives here, and nothing here imports emsync at package import.
"""
