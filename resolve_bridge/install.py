"""Install the "EMSYNC Score" script into DaVinci Resolve's per-user Scripts folder.

Run it with the Python of the environment where emsync is installed::

    python -m resolve_bridge.install            # or: emsync-resolve-install
    python -m resolve_bridge.install --dest DIR # another Scripts/Utility folder
    python -m resolve_bridge.install --uninstall

The copy is ``emsync_score.py`` with its install block filled in: this interpreter, its
``major.minor`` version and the import paths where ``emsync_plugin`` and ``resolve_bridge`` live,
so Resolve's own Python can import emsync (or, when its version differs, run this interpreter as
a worker). Resolve lists scripts of ``Fusion/Scripts/Utility`` on every page under
Workspace ▸ Scripts; the per-user folders are those of Resolve's scripting README ("Specific
user"). The write is atomic (temporary file + rename) and idempotent (an identical copy is left
alone); uninstall removes only a file this installer wrote.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import re
import sys
import sysconfig
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from emsync_plugin.errors import EmsyncError
from emsync_plugin.fileio import write_text

logger = logging.getLogger(__name__)

SCRIPT_NAME = "EMSYNC Score.py"  # the menu entry is the file name without .py
BEGIN = "# --- emsync install: begin"
END = "# --- emsync install: end ---"
_BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)


class InstallError(EmsyncError):
    """The script could not be installed or removed."""


def default_dest(platform: str | None = None, env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """Resolve's per-user ``Fusion/Scripts/Utility`` folder for ``platform`` (default: this one).

    From Resolve's ``Developer/Scripting/README.txt``, "Specific user":

    * Linux: ``$HOME/.local/share/DaVinciResolve/Fusion/Scripts``
    * macOS: ``/Users/<UserName>/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts``
    * Windows: ``%APPDATA%\\Blackmagic Design\\DaVinci Resolve\\Support\\Fusion\\Scripts`` (the README
      writes ``%APPDATA%\\Roaming\\...``, but ``%APPDATA%`` already is ``...\\AppData\\Roaming``).
    """
    platform = platform or sys.platform
    environ = os.environ if env is None else env
    home = home or Path.home()
    if platform == "win32":
        appdata = environ.get("APPDATA")
        base = Path(appdata) if appdata else home / "AppData" / "Roaming"
        scripts = base / "Blackmagic Design" / "DaVinci Resolve" / "Support" / "Fusion" / "Scripts"
    elif platform == "darwin":
        scripts = home / "Library" / "Application Support" / "Blackmagic Design" / "DaVinci Resolve" / "Fusion" / "Scripts"
    else:
        scripts = home / ".local" / "share" / "DaVinciResolve" / "Fusion" / "Scripts"
    return scripts / "Utility"


#: The Mac App Store builds (Studio, and the free "Lite") are sandboxed: their per-user folders
#: live in the app's container, ``~/Library/Containers/<bundle id>/Data/Library/Application Support``
#: (the layout Blackmagic's IOPlugins SDK readme gives for "Mac (AppStore)"; scripts go to its
#: ``Fusion/Scripts`` as script authors for the App Store build report).
APP_STORE_BUNDLES = ("com.blackmagic-design.DaVinciResolveAppStore", "com.blackmagic-design.DaVinciResolveLite")


def app_store_dests(home: Path | None = None) -> list[Path]:
    """The Scripts/Utility folders of the Mac App Store builds installed for this user."""
    home = home or Path.home()
    containers = [home / "Library" / "Containers" / b for b in APP_STORE_BUNDLES]
    return [c / "Data" / "Library" / "Application Support" / "Fusion" / "Scripts" / "Utility"
            for c in containers if c.is_dir()]


def resolve_installed(platform: str | None = None, env: Mapping[str, str] | None = None,
                      home: Path | None = None) -> bool:
    """True when a DaVinci Resolve installation (or its per-user folder) is found on this machine."""
    platform = platform or sys.platform
    environ = os.environ if env is None else env
    home = home or Path.home()
    support = default_dest(platform, environ, home).parents[2]  # the folder holding Fusion/
    places = [support]
    if platform == "darwin":
        places += [Path("/Applications/DaVinci Resolve"), Path("/Library/Application Support/Blackmagic Design/DaVinci Resolve")]
        if app_store_dests(home):
            return True
    elif platform == "win32":
        program_files = Path(environ.get("PROGRAMFILES") or "C:/Program Files")
        places.append(program_files / "Blackmagic Design" / "DaVinci Resolve")
    else:
        places += [Path("/opt/resolve"), home / ".local" / "share" / "DaVinciResolve"]
    return any(p.exists() for p in places)


def import_paths() -> list[str]:
    """Folders Resolve's Python needs on sys.path to import emsync from this environment."""
    paths: list[str] = []
    for module in ("emsync_plugin", "resolve_bridge"):
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise InstallError(
                f"{module} is not importable from {sys.executable}",
                hint="install emsync in this environment (pip install emsync) and run the installer with its Python",
            )
        paths.append(str(Path(list(spec.submodule_search_locations)[0]).resolve().parent))
    for key in ("purelib", "platlib"):
        paths.append(str(Path(sysconfig.get_paths()[key]).resolve()))
    unique: list[str] = []
    for p in paths:
        if p not in unique:
            unique.append(p)
    return unique


def render_script(source: str, python: str, version: tuple[int, int], paths: list[str]) -> str:
    """``source`` with its install block filled in."""
    if not _BLOCK.search(source):
        raise InstallError("the script has no install block", hint="reinstall emsync; the package is damaged")
    block = "\n".join([
        f"{BEGIN} (written by resolve_bridge/install.py; run it again to update) ---",
        f"EMSYNC_PYTHON = {python!r}",
        f"EMSYNC_PYTHON_VERSION = {tuple(version)!r}",
        f"EMSYNC_PATHS = {list(paths)!r}",
        END,
    ])
    return _BLOCK.sub(lambda m: block, source, count=1)


def script_source() -> str:
    """The text of ``resolve_bridge/emsync_score.py`` as shipped."""
    return resources.files("resolve_bridge").joinpath("emsync_score.py").read_text(encoding="utf-8")


def install(dest: str | Path | None = None) -> tuple[Path, bool]:
    """Write the script into ``dest`` (default :func:`default_dest`); returns (path, changed)."""
    folder = Path(dest).expanduser() if dest is not None else default_dest()
    target = folder / SCRIPT_NAME
    text = render_script(script_source(), sys.executable, sys.version_info[:2], import_paths())
    try:
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            logger.info("%s is up to date", target)
            return target, False
        write_text(target, text)
    except OSError as exc:
        raise InstallError(f"cannot write the script: {exc.strerror or exc}", path=target,
                           hint="check the folder's permissions or pass --dest") from exc
    logger.info("installed %s", target)
    return target, True


def uninstall(dest: str | Path | None = None) -> tuple[Path, bool]:
    """Remove the script from ``dest``; returns (path, removed). Refuses files it did not write."""
    folder = Path(dest).expanduser() if dest is not None else default_dest()
    target = folder / SCRIPT_NAME
    if not target.exists():
        return target, False
    try:
        if BEGIN not in target.read_text(encoding="utf-8", errors="replace"):
            raise InstallError("was not written by the emsync installer", path=target, hint="remove it by hand if you want to")
        target.unlink()
    except OSError as exc:
        raise InstallError(f"cannot remove the script: {exc.strerror or exc}", path=target,
                           hint="check the folder's permissions") from exc
    logger.info("removed %s", target)
    return target, True


def main(argv: list[str] | None = None) -> int:
    """Command line: install (default) or ``--uninstall``; exit status 0, or 2 on an error."""
    parser = argparse.ArgumentParser(
        prog="emsync-resolve-install",
        description="Install the EMSYNC Score script into DaVinci Resolve (Workspace > Scripts > Utility).",
    )
    parser.add_argument("--dest", help=f"Scripts folder to use (default: {default_dest()})")
    parser.add_argument("--uninstall", action="store_true", help="remove the script")
    args = parser.parse_args(argv)
    try:
        if args.uninstall:
            path, removed = uninstall(args.dest)
            print(f"removed {path}" if removed else f"nothing to remove: {path} does not exist")
        else:
            path, changed = install(args.dest)
            print(f"{'installed' if changed else 'already up to date:'} {path}")
            if args.dest is None:
                for extra in app_store_dests() if sys.platform == "darwin" else []:
                    other, _ = install(extra)
                    print(f"installed for the Mac App Store build: {other}")
            if args.dest is None and not resolve_installed():
                print(f"No DaVinci Resolve installation was found on this machine; the script was written to {path}, "
                      "where Resolve looks for it. Install DaVinci Resolve (the free edition works), then run "
                      "Workspace > Scripts > EMSYNC Score.")
            else:
                print("Restart DaVinci Resolve, then run Workspace > Scripts > EMSYNC Score.")
    except EmsyncError as exc:
        print(f"emsync-resolve-install: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
