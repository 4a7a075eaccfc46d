"""``python -m millstream.cli``: the same command as the ``millstream`` script."""

from millstream.cli import main

main()
