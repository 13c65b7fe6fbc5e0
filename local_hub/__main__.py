"""`python -m local_hub hub serve ...`: the hub commands without importing the other packages."""

import sys

from local_hub.cli import main

sys.exit(main())
