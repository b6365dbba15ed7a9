"""python -m citybrain."""

from citybrain.cli import main

main()
