"""`python -m worker` is the `twap` console script."""

from worker.cli import main

main()
