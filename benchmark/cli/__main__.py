"""`python -m benchmark.cli` is `gpsbench`."""

import sys

from benchmark.cli import main

sys.exit(main())
