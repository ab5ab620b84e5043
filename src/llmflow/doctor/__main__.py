"""`python -m llmflow.doctor [--embedded]`."""

import sys

from . import main

sys.exit(main())
