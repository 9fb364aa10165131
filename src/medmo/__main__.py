"""`python -m medmo` (used by `accelerate launch -m medmo`)."""
import sys

from medmo.cli import main

sys.exit(main())
