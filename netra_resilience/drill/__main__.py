"""``python -m netra_resilience.drill [options]`` = ``netra-resilience drill [options]``."""

from __future__ import annotations

import sys

from netra_resilience.drill import main

sys.exit(main(["drill", *sys.argv[1:]]))
