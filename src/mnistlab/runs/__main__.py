"""`python -m mnistlab.runs ls [DIR ...] [options]` or `diff A B`."""

from mnistlab.runs import main

raise SystemExit(main())
