"""Names in a generated module: the spec's names first, the generator's own around them.

Two scopes matter. The kernels' locals hold the spec's names (states, gate values, named values)
next to the generator's (loop indices, sizes, views, constants, d_<name>, tmpN); the Python
wrappers hold the public arguments and their own locals. Buffers appear in both. A name is taken
as preferred when it is free in every scope it enters, else with a suffix: `_`, `_2`, `_3`, ...
Names starting with `_` are the generated code's own fixed names (a spec cannot declare them).
"""
import builtins
import keyword

# globals the kernels of every backend use by name: a spec value of that name is renamed
KERNEL_GLOBALS = ("np", "math", "cuda", "range", "min")
# what the generated wrappers use: their arguments and locals, the module's globals
WRAPPER_NAMES = ("x", "params", "state0", "lengths", "reverse", "dy", "d_final", "saved", "T", "B", "I",
                 "H", "dtype", "x2d", "y", "final_states", "d_params", "dx", "d_state0", "x_loop", "name",
                 "np", "math", "cuda", "rt", "checks", "device", "elementwise", "gemm", "launch", "functools",
                 "types", "njit", "import_cuda",
                 "NAME", "SPEC_SHA256", "STATES", "OUTPUT", "PARAMS", "COOPERATIVE", "SHARED_ROWS",
                 "RECURRENT_LINEARS", "KERNEL_ARGS", "init_params", "forward", "backward")


class Namer:
    def __init__(self, kernel=(), wrapper=()):
        self.scopes = {"kernel": set(kernel) | set(keyword.kwlist),
                       "wrapper": set(wrapper) | set(keyword.kwlist) | set(dir(builtins))}

    def copy(self):
        other = Namer()
        other.scopes = {k: set(v) for k, v in self.scopes.items()}
        return other

    def free(self, name, scopes=("kernel",)):
        return all(name not in self.scopes[s] for s in scopes)

    def claim(self, preferred, scopes=("kernel",)):
        """`preferred`, or the first free of preferred_, preferred_2, ...; taken in `scopes`."""
        name, k = preferred, 1
        while not self.free(name, scopes):
            k += 1
            name = f"{preferred}_" if k == 2 else f"{preferred}_{k - 1}"
        for s in scopes:
            self.scopes[s].add(name)
        return name

    def numbered(self, prefix, scopes=("kernel",)):
        """prefix0, prefix1, ... skipping taken names (for the CSE temporaries)."""
        k = 0
        while True:
            name = f"{prefix}{k}"
            k += 1
            if self.free(name, scopes):
                for s in scopes:
                    self.scopes[s].add(name)
                yield name
