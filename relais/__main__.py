"""`python -m relais`."""

from relais.cli import main

main()
