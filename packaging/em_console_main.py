"""The bundle's entry point (build.spec): the same `main` as the em-console command."""

import multiprocessing
import sys

from ui.cli import main

if __name__ == "__main__":
    # The sync engine runs in a child process, which a bundle starts as itself.
    multiprocessing.freeze_support()
    sys.exit(main())
