"""``python -m app ...`` is the same as the ``openwa`` command."""
from app.entry import main

main()
