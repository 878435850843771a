"""Scene emotion: the valence/arousal of each scene that conditions its music (EMSYNC design).

:func:`analyze.estimate` is the entry point (``pipeline.estimate_moods`` calls it); the modules
are listed in ``docs/emotion.md``. Nothing is imported here, so ``import
emsync_plugin.emotion.overrides`` stays light.
"""
