"""``python -m app ...`` is the same as the ``openwa`` command."""
from app.cli import main

main()
