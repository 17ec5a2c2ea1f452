"""``python -m bosun.cli``: the same as the ``bosun`` script."""

from bosun.cli.main import main

main()
