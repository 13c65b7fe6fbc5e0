import sys

from rag_de.cli import main

sys.exit(main())
