"""`python -m entmask` is the `entmask` command."""
import sys

from entmask.launch import main

sys.exit(main())
