"""python3 -m analysis {report,export,info} ARCHIVE ... (see docs/analysis.md)."""
import sys

from .cli import main

sys.exit(main())
