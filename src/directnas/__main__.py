import sys

from directnas.cli.main import main

sys.exit(main())
