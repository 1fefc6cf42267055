"""``python -m mediastore`` runs the CLI."""

from .cli import main

main()
