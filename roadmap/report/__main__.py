"""`python -m roadmap.report RUNS_DIR ...`: the report's command line (roadmap.report.build.main)."""

import sys

from roadmap.report.build import main

sys.exit(main())
