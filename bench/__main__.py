"""`python -m bench`: the whole vitals benchmark in one run (see bench/suite.py)."""

from bench.suite import main

main()
