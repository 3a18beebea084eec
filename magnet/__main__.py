"""``python -m magnet`` runs the ``magnetar`` command line."""

from magnet.cli import main

main()
