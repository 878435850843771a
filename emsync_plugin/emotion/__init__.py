"""Scene emotion: the valence/arousal of each scene that conditions its music (EMSYNC design).

* ``analyze.py`` - per-scene orchestration: decode each scene (PyAV), measure it, apply the
  editor's overrides, smooth; :func:`analyze.estimate` is what ``pipeline.estimate_moods`` calls.
* ``cues.py`` - picture and sound cues (brightness, saturation, colourfulness, motion, cut rate,
  loudness, spectral flux, onsets) and the valence/arousal they suggest (Valdez & Mehrabian
  1994; Hanjalic & Xu 2005).
* ``faces.py`` - faces and their expressions (OpenCV Haar + the shipped FER2013 model).
* ``mapping.py`` - expression classes → valence/arousal (Russell & Mehrabian 1977 centres, as
  in EMSYNC), fusion of faces and cues, edge-preserving smoothing across scenes.
* ``overrides.py`` - ``emsync: MOOD`` timeline markers and ``--emotion N=MOOD``.

Nothing is imported here, so ``import emsync_plugin.emotion.overrides`` stays light.
"""
