"""The `rnngen` command line."""
import argparse
import sys

from . import __version__
from .errors import SpecError


def _build(args):
    from .build import build, builtin_generated_dir, builtin_specs_dir, spec_paths
    specs_dir = args.specs or builtin_specs_dir()
    out_dir = args.out or (builtin_generated_dir() if not args.specs else None)
    if out_dir is None:
        print("rnngen build: --out is required with --specs (the built-in generated/ is for the "
              "built-in specs)", file=sys.stderr)
        return 2
    try:
        paths = spec_paths(specs_dir, args.names)
    except FileNotFoundError as exc:
        print(f"rnngen build: {exc}", file=sys.stderr)
        return 2
    try:
        changed = build(paths, out_dir, check=args.check, complete=not args.names)
    except SpecError as exc:
        print(f"rnngen build: SpecError: {exc}", file=sys.stderr)
        return 1
    if args.check and changed:
        print("rnngen build --check: stale generated files (run `rnngen build`):", file=sys.stderr)
        for path in changed:
            print(f"  {path}", file=sys.stderr)
        return 1
    return 0


def _bench(args):
    from .bench import main_args
    return main_args(args)


def parser():
    p = argparse.ArgumentParser(prog="rnngen", description=__doc__)
    p.add_argument("--version", action="version", version=f"rnngen {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="generate kernel modules from cell specs")
    b.add_argument("names", nargs="*", help="spec names (default: every spec in the folder)")
    b.add_argument("--specs", help="folder of spec files (default: the built-in specs)")
    b.add_argument("--out", help="folder for generated modules (default: the built-in generated/)")
    b.add_argument("--check", action="store_true", help="write nothing; exit 1 if any module is stale")
    b.set_defaults(func=_build)
    from . import charlm
    charlm.add_train_parser(sub)
    charlm.add_sample_parser(sub)
    from .show import add_parsers as add_show_parsers
    add_show_parsers(sub)      # show, list
    from .bench import add_arguments
    bench = sub.add_parser("bench", help="time the CPU kernels against torch.nn and the machine's sgemm rate")
    add_arguments(bench)
    bench.set_defaults(func=_bench)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
