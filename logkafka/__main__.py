"""``python -m logkafka``: the ``logkafka`` command."""

import sys

from logkafka._cli import main

sys.exit(main())
