"""``python -m nvr`` runs the command line."""

from nvr.cli import main

main()
