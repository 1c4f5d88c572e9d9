import sys

from roadmap.bench.cli import main

sys.exit(main())
