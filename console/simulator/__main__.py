"""`python -m console.simulator --port 8765 --wearers 5000 --speed 60 --seed 7`."""

import sys

from console.simulator.server import main

sys.exit(main())
