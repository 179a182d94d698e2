"""`python -m mnistlab.report DIR [DIR...] [--out OUT]`."""

from mnistlab.report import main

raise SystemExit(main())
