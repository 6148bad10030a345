"""``python -m mucomp.cli``: the ``mucomp`` command."""

import sys

from mucomp.cli import main

sys.exit(main())
