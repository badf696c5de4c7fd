"""``python -m llmrnn ...`` does what the ``llmrnn`` command does (notebooks: ``!python -m``)."""

import sys

from .cli import main

sys.exit(main())
