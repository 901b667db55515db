"""Entry point of `python -m testbed`."""

from testbed.up import main

main()
