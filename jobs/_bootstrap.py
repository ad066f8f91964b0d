"""Make `ld_spark` importable when a job file is run from a checkout by spark-submit."""

import sys
from pathlib import Path

try:
    import ld_spark  # noqa: F401  (installed, or shipped with --py-files)
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
