"""`python -m console` is the `streamops` command."""

from console.cli import main

main()
