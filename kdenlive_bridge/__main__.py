"""``python -m kdenlive_bridge [PROJECT]``: open the EMSYNC panel."""
import sys

from .panel import main

sys.exit(main())
