"""`python -m entmask.bench ...`: the benchmark's command line (entmask.bench.cli); nothing else lives here."""
import sys

from entmask.bench import _cli

sys.exit(_cli())
