"""``python -m occgui`` = the ``occgui`` command."""
import sys

from .cli import main

sys.exit(main())
