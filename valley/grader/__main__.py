"""`python -m valley.grader serve|grade`: the grader image's entrypoint, standard library only."""

import sys

from valley.grader.command import main

if __name__ == "__main__":
    sys.exit(main())
