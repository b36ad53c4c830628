"""`python -m spdy ...` runs the `spdy` command (spdy.cli)."""
import sys

from spdy.cli import main

sys.exit(main())
