"""``python -m magnet`` runs the ``magnetar`` command line."""

from magnet.cli.app import main

main()
