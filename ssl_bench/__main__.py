import sys

from ssl_bench.cli.main import main

sys.exit(main())
