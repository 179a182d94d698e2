"""`python -m mnistlab.report DIR [DIR...] [--out OUT]`."""

from mnistlab.report.write import main

raise SystemExit(main())
