"""``python -m screening``: the ``screening`` command, for when its script is not on PATH."""

from .cli import main

main(prog_name="screening")
