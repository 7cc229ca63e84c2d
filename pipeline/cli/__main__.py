"""`python -m mgold.pipeline.cli` = `mgold` (tests run the CLI in a subprocess this way)."""

from . import main

main()
