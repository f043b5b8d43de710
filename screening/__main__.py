"""``python -m screening``: the ``screening`` command, for when its script is not on PATH."""

from screening.cli import main

main(prog_name="screening")
