import sys

from config.devservers.cli import main

sys.exit(main(sys.argv[1:]))
