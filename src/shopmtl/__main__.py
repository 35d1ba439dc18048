"""`python -m shopmtl` is the `shopmtl` command."""

import sys

from .cli import main

sys.exit(main())
