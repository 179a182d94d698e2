"""`python -m mnistlab.eda [data=fashion_mnist] [logger=none]`."""

from mnistlab.eda.explore import main
from mnistlab.run.app import run_app

run_app(main, "eda")
