"""Click command groups that `console/cli.py` registers with `cli.add_command(...)`."""
