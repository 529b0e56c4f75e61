"""``python -m pofa_deploy``: the ``pofa-deploy`` command (also what a plain checkout runs without an install)."""

import sys

from .cli import main

sys.exit(main())
