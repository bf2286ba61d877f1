import sys

from console.simulator.server import main

sys.exit(main())
