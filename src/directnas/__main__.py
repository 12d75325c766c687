import sys

from directnas.cli import main

sys.exit(main())
