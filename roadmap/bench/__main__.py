import sys

from roadmap.bench.core import main

sys.exit(main())
