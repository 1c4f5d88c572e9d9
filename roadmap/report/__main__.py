import sys

from roadmap.report.build import main

sys.exit(main())
