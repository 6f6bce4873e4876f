import sys

from ctrpipe.cli import main

sys.exit(main())
