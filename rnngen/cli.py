"""The `rnngen` command (console script rnngen.cli:main; `python -m rnngen.cli`): rnngen/tools/cli.py."""
import sys

from .tools.cli import main, parser  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
