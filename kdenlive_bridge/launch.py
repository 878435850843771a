"""Starting the panel: ``emsync-kdenlive-panel [PROJECT]`` (or ``python -m kdenlive_bridge``).

Imports nothing from Qt until the window is wanted, so a missing ``gui`` extra or a Qt system
library is one line saying what to install, not a traceback; ``--install-desktop-entry`` writes
an XDG desktop entry so the panel sits in the desktop's menu next to Kdenlive.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

COMMAND = "emsync-kdenlive-panel"
GUI_EXTRA = "pip install 'emsync[gui]'"
DESKTOP_FILE = "emsync-kdenlive-panel.desktop"


def desktop_entry(exec_line: str) -> str:
    """The text of the panel's ``.desktop`` file (XDG Desktop Entry Specification 1.5)."""
    return "\n".join((
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.5",
        "Name=EMSYNC score for Kdenlive",
        "GenericName=Film score generator",
        "Comment=Score the Kdenlive project you have open: scene moods, music, added to the project",
        f"Exec={exec_line} %f",
        "Icon=kdenlive",
        "Terminal=false",
        "Categories=AudioVideo;Video;AudioVideoEditing;",
        "MimeType=application/x-kdenlive;",
        "",
    ))


def install_desktop_entry(data_home: Path | None = None) -> Path:
    """Write ``$XDG_DATA_HOME/applications/emsync-kdenlive-panel.desktop``; returns its path."""
    base = data_home or Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    exe = shutil.which(COMMAND)
    exec_line = f'"{exe}"' if exe and " " in exe else exe or f'"{sys.executable}" -m kdenlive_bridge'
    target = base / "applications" / DESKTOP_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(desktop_entry(exec_line), encoding="utf-8")
    return target


def missing_qt_libraries() -> list[str]:
    """System libraries Qt's X11 platform plugin (xcb) needs and cannot find (Linux; [] elsewhere)."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM", "xcb") != "xcb":
        return []
    if os.environ.get("WAYLAND_DISPLAY") and "QT_QPA_PLATFORM" not in os.environ:
        return []
    try:
        import PySide6

        plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        ldd = shutil.which("ldd")
        if not plugin.exists() or not ldd:
            return []
        out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=10).stdout
    except (ImportError, OSError, subprocess.SubprocessError):
        return []
    return [line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line]


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="EMSYNC panel for Kdenlive projects")
    parser.add_argument("project", nargs="?", help="Kdenlive project to open (.kdenlive); default: the one Kdenlive has open")
    parser.add_argument("--install-desktop-entry", action="store_true",
                        help="add the panel to the desktop's application menu (XDG) and exit")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse the command line, then show the panel (or say in one line what is missing)."""
    args, qt_args = _parser(prog or COMMAND).parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.install_desktop_entry:
        path = install_desktop_entry()
        sys.stdout.write(f"Desktop entry written: {path}\n")
        return 0
    try:
        from . import panel
    except ImportError as exc:
        sys.stderr.write(f"{COMMAND}: the panel needs Qt (PySide6), which is not installed ({exc.name or exc}): "
                         f"run {GUI_EXTRA}\n")
        return 1
    missing = missing_qt_libraries()
    if missing:
        sys.stderr.write(f"{COMMAND}: Qt cannot open a window: the system library {', '.join(missing)} is missing "
                         "(on Debian/Ubuntu: sudo apt install libxcb-cursor0 and the libxcb-* it names)\n")
        return 1
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return panel.show_window(args.project, qt_args)
