import sys

from streamrnn.cli import main

sys.exit(main())
