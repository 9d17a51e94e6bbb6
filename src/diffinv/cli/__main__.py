"""``python -m diffinv.cli`` (e.g. under ``accelerate launch``)."""

import sys

from diffinv.cli import main

sys.exit(main())
