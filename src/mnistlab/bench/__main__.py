"""`python -m mnistlab.bench`: mnistlab's epoch beside a bare loop of the same recipe."""

from mnistlab.bench.compare import main

main()
