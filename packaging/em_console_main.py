"""The bundle's entry point (build.spec): the same `main` as the em-console command."""

import sys

from ui.cli import main

if __name__ == "__main__":
    sys.exit(main())
