"""python3 -m analysis {report,summary,info,sizing,score} ARCHIVE ... (see docs/analysis.md)."""
import sys

from .cli import main

sys.exit(main())
