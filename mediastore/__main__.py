"""``python -m mediastore`` runs the command."""

from .launch import main

main()
