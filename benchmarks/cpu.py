"""CPU benchmark: the same as `rnngen bench` (see rnngen/bench.py). Run `python benchmarks/cpu.py --help`."""
import sys

from rnngen.bench import main

if __name__ == "__main__":
    sys.exit(main())
