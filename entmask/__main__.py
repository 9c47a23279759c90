"""`python -m entmask` is the `entmask` command."""
import sys

from entmask.cli import main

sys.exit(main())
