"""`python -m server`: the same command line as the `kiosk-server` script."""

import sys

from server.cli import main

if __name__ == "__main__":
    sys.exit(main())
