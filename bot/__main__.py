"""Entry point of `python -m bot` (same as the `kubegate` command)."""

from bot.cli import main

main()
