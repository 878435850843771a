"""``python -m kdenlive_bridge [PROJECT]``: open the EMSYNC panel."""
import sys

from .launch import main

sys.exit(main(prog="python -m kdenlive_bridge"))
