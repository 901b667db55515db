"""Entry point of `python -m testbed`."""

from testbed.cli import main

main()
