"""`python -m aicode` runs the command-line interface."""

from aicode.cli import main

raise SystemExit(main())
