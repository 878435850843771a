"""EMSYNC Score: the script DaVinci Resolve runs (Workspace ▸ Scripts ▸ Utility ▸ EMSYNC Score).

``resolve_bridge/install.py`` copies this file into Resolve's Scripts folder with the block below
filled in: the interpreter, version and import paths of the environment where emsync is
installed. The script only makes the ``resolve_bridge`` package importable in Resolve's own
Python and hands over to :func:`resolve_bridge.scoring.main` (what a run does);
:mod:`resolve_bridge.worker` says how emsync is reached when Resolve's Python cannot import it.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# --- emsync install: begin (resolve_bridge/install.py rewrites this block in the installed copy) ---
EMSYNC_PYTHON: str | None = None  # interpreter of the environment where emsync is installed
EMSYNC_PYTHON_VERSION: tuple | None = None  # its (major, minor)
EMSYNC_PATHS: list = []  # its import paths, put in front of sys.path when the versions match
# --- emsync install: end ---

PACKAGE = "resolve_bridge"
PACKAGE_MODULE = "resolve_bridge.emsync_score"


def _versions_match() -> bool:
    return EMSYNC_PYTHON_VERSION is None or tuple(EMSYNC_PYTHON_VERSION) == tuple(sys.version_info[:2])


def _bootstrap() -> None:
    """Make ``resolve_bridge`` importable here.

    When this interpreter suits the recorded environment its paths go in front of sys.path (emsync
    then runs in-process); otherwise only the package is loaded from where it was installed, since
    the other paths hold compiled packages built for another Python.
    """
    if not EMSYNC_PATHS:
        return
    if _versions_match():
        for entry in reversed(EMSYNC_PATHS):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        return
    if PACKAGE in sys.modules:
        return
    for entry in EMSYNC_PATHS:
        init = Path(entry) / PACKAGE / "__init__.py"
        if not init.is_file():
            continue
        spec = importlib.util.spec_from_file_location(PACKAGE, init, submodule_search_locations=[str(init.parent)])
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            sys.modules[PACKAGE] = module
            spec.loader.exec_module(module)
            return


def environment():
    """The recorded environment as a :class:`resolve_bridge.worker.Environment`."""
    from resolve_bridge.worker import Environment

    version = tuple(EMSYNC_PYTHON_VERSION) if EMSYNC_PYTHON_VERSION is not None else None
    return Environment(EMSYNC_PYTHON, version, tuple(EMSYNC_PATHS))


def main(resolve=None, ui=None, options=None) -> int:
    """Entry point when Resolve runs the script: 0 done or cancelled, 2 user error, 1 bug."""
    _bootstrap()
    try:
        from resolve_bridge import scoring
    except ImportError as exc:
        sys.stdout.write(f"EMSYNC: error: resolve_bridge is not importable ({exc}). Run emsync-resolve-install again.\n")
        return 2
    return scoring.main(resolve, ui, options, env=environment(), namespace=globals())


if __name__ == "__main__" and "--worker" in sys.argv[1:]:  # how launchers of earlier versions start the worker
    from resolve_bridge.worker import worker_main

    sys.exit(worker_main())
elif __name__ != PACKAGE_MODULE:  # run by Resolve (as "__main__" or under another name)
    main()
