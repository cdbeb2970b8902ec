"""The `rnngen` command line."""
import argparse
import sys

from .. import __version__
from ..errors import SpecError


def _build(args):
    from .build import build, builtin_generated_dir, builtin_specs_dir, spec_paths
    from ..errors import BuildError
    specs_dir = args.specs or builtin_specs_dir()
    out_dir = args.out or (builtin_generated_dir() if not args.specs or args.into_package else None)
    if out_dir is None:
        print("rnngen build: --out is required with --specs (rnngen's own generated/ folder holds the "
              "built-in cells; add --into-package to build these specs into it)", file=sys.stderr)
        return 2
    try:
        paths = spec_paths(specs_dir, args.names)
        changed = build(paths, out_dir, check=args.check, complete=not args.names, specs_dir=specs_dir,
                        into_package=args.into_package)
    except (FileNotFoundError, BuildError) as exc:
        print(f"rnngen build: {exc}", file=sys.stderr)
        return 2
    except SpecError as exc:
        print(f"rnngen build: SpecError: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rnngen build: interrupted; each module in {out_dir} is whole (its old or its new text): "
              f"run the build again", file=sys.stderr)
        return 130
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
    b = sub.add_parser(
        "build", help="generate kernel modules from cell specs",
        description="Generate the kernel modules <cell>.py and _cuda_<cell>.py from cell specs. Spec "
                    "files are Python and are executed: build, show or list only specs you trust. "
                    "A build overwrites or removes only modules rnngen generated (their header says "
                    "so); it removes a module only when its header names this same specs folder and "
                    "its spec is gone, and it stops, writing nothing, when any other file is in the way.")
    b.add_argument("names", nargs="*",
                   help="cells to build, by spec file name without .py, which must be the cell's name "
                        "(default: every spec in the folder; only then are modules whose spec is gone "
                        "removed)")
    b.add_argument("--specs", help="folder of spec files (default: the built-in specs); they are Python "
                                   "and are executed")
    b.add_argument("--out", help="folder for generated modules (default: the built-in generated/; "
                                 "required with --specs)")
    b.add_argument("--into-package", action="store_true",
                   help="allow --specs to be built into rnngen's own generated/ folder, next to the "
                        "built-in cells (so rnngen.load(name) finds them without path=)")
    b.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 naming the stale modules, 2 if a build would refuse")
    b.set_defaults(func=_build)
    from . import train_cli
    train_cli.add_train_parser(sub)
    train_cli.add_sample_parser(sub)
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
