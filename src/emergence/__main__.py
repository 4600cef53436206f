"""`python -m emergence …` (and `torchrun -m emergence train …`): the command line."""

import sys

from emergence.cli import main

sys.exit(main())
