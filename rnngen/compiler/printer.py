"""Print SymPy expressions as Numba code with typed constants and stable helper functions, and the
step's equations as the docstring shows them (the last stage: nothing reads printed text back)."""
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ..spec.masks import INITIAL_WORDS
from ..spec.functions import exp_nonpositive, log_sigmoid, maximum, relu, sigmoid, softplus, step, tanh

# the backends' math libraries provide these (imported under these names), Python's math the rest
LIBRARY = {sigmoid: "_sigmoid", tanh: "_tanh", relu: "_relu", step: "_step", softplus: "_softplus",
           log_sigmoid: "_log_sigmoid", maximum: "_maximum", exp_nonpositive: "_exp_nonpositive"}
MATH = {sp.exp: "math.exp", sp.log: "math.log"}


def constant_name(number):
    """A readable local name for a numeric constant: 1 -> c1, -2 -> cm2, 1/2 -> c1_2, 0.25 -> c0p25."""
    def part(n):
        return f"m{-n}" if n < 0 else f"{n}"
    if number.is_Integer:
        return "c" + part(int(number))
    if number.is_Rational:
        return f"c{part(int(number.p))}_{int(number.q)}"
    text = repr(float(number)).replace("-", "m").replace(".", "p").replace("+", "")
    return "c" + text


def literal(number):
    """The constant's value as Python source: 1, 1 / 2, 0.25."""
    if number.is_Float:
        return repr(float(number))
    return str(number) if number.is_Integer else f"{number.p} / {number.q}"


class Constants:
    """The typed constants of one module's kernels: each named once, around the names in use."""

    def __init__(self, namer):
        self.namer = namer
        self.names = {}          # preferred name -> (local name, sympy number)
        self.helpers = set()     # the math library's functions the printed lines call

    def name(self, number):
        key = constant_name(number)
        if key not in self.names:
            self.names[key] = (self.namer.claim(key), number)
        return self.names[key][0]

    def lines(self):
        """[(local name, literal text)] by name."""
        return sorted((local, literal(num)) for local, num in self.names.values())


class KernelPrinter(PythonCodePrinter):
    """Prints one pointwise expression over the kernels' local names; constants become typed locals."""

    def __init__(self, constants):
        super().__init__({"fully_qualified_modules": False, "standard": "python3"})
        self.constants = constants

    def _constant(self, number):
        return self.constants.name(number)

    def _print_Symbol(self, expr):
        return expr.name

    def _print_Integer(self, expr):
        return self._constant(expr)

    _print_Zero = _print_One = _print_NegativeOne = _print_Integer

    def _print_Rational(self, expr):
        return self._constant(expr)

    _print_Half = _print_Rational

    def _print_Float(self, expr):
        return self._constant(expr)

    def _print_Pow(self, expr, rational=False):
        base, e = expr.base, expr.exp
        b = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Mul"] + 1)
        if e.is_Integer and 1 < int(e) <= 4:
            return "(" + "*".join([b] * int(e)) + ")"
        if e.is_Integer and -4 <= int(e) <= -1:
            return f"({self._constant(sp.Integer(1))}/" + "(" + "*".join([b] * -int(e)) + "))"
        if e == sp.Rational(1, 2):
            return f"math.sqrt({self._print(base)})"
        if e == sp.Rational(-1, 2):
            return f"({self._constant(sp.Integer(1))}/math.sqrt({self._print(base)}))"
        if e == sp.Rational(3, 2):         # a square root and a product: no pow() call
            return f"({b}*math.sqrt({self._print(base)}))"
        if e == sp.Rational(-3, 2):
            return f"({self._constant(sp.Integer(1))}/({b}*math.sqrt({self._print(base)})))"
        return f"{b}**{self._print(e)}"

    def _print_Function(self, expr):
        if expr.func in LIBRARY:
            name = LIBRARY[expr.func]
            self.constants.helpers.add(name)
        else:
            name = MATH[expr.func]
        return f"{name}({', '.join(self._print(a) for a in expr.args)})"

    _print_exp = _print_log = _print_Function
    _print_sigmoid = _print_tanh = _print_relu = _print_step = _print_softplus = _print_Function
    _print_log_sigmoid = _print_maximum = _print_exp_nonpositive = _print_Function


def _values(kernel):
    """The named values and the reductions, each after what it uses."""
    defs = {sym: ("named", e) for sym, e in kernel.named}
    defs.update({sym: ("mean", (e, count, size, level)) for sym, e, count, size, level in kernel.mean_defs})
    done, out = set(), []

    def emit(sym):
        if sym in done or sym not in defs:
            return
        done.add(sym)
        kind, what = defs[sym]
        e = what if kind == "named" else what[0]
        for dep in sorted(e.free_symbols & defs.keys(), key=str):
            emit(dep)
        if kind == "named":
            out.append(f"{sym} = {sp.sstr(e)}")
        else:
            _, count, size, level = what
            terms = " + ".join(sp.sstr(t) for t in (sp.Add.make_args(e) if count > 1 else (e,)))
            over = f"{count}*{size}" if count > 1 else f"{size}"
            out.append(f"{sym} = sum over the units j of ({terms}) / ({over})    [mean, stage {level}]")

    for sym in list(defs):
        emit(sym)
    return out


def equations(kernel):
    """The step as the spec wrote it, with the spec's names: linears, named values, tied sums, updates."""
    def linear_line(lin):
        src = lin.input if isinstance(lin.input, str) else sp.sstr(lin.input)
        bias = f" + bias_{lin.name}" if lin.bias else ""
        where = "hoisted before the loop" if lin.level == 0 else f"stage {lin.level}"
        weight = f"blockdiag(weight_{lin.name}[0], ..., weight_{lin.name}[heads-1])" if lin.heads else \
            f"weight_{lin.name}"
        return f"{', '.join(lin.outputs)} = ({src}) @ {weight}.T{bias}    [{where}]"

    by_name = {lin.name: lin for lin in kernel.linears}
    lines = [linear_line(lin) for lin in kernel.linears if lin.level <= 1]
    lines += _values(kernel)
    lines += [linear_line(lin) for lin in kernel.linears if lin.level > 1]
    for a, b in kernel.ties.items():
        xs, hs = by_name[a].outputs, by_name[b].outputs
        lines.append(f"({', '.join(f'{u} + {v}' for u, v in zip(xs, hs))} only appear summed:")
        kept = [v for v, (buf, _) in kernel.kept_values.items() if buf == kernel.buffer("x_preact", a).name]
        saves = "the sums" if not kept else f"{', '.join(kept)} in their place" if len(kept) == len(xs) else \
            f"{', '.join(kept)} in the place of their sums, and the other sums,"
        lines.append(f" the loop adds them once, as {', '.join(kernel.tie_sums[a])}, and saves {saves} for backward)")
    untied = [v for v, (buf, _) in kernel.kept_values.items()
              if not any(buf == kernel.buffer("x_preact", a).name for a in kernel.ties)]
    if untied:
        lines.append(f"(the loop saves {', '.join(untied)} for backward in the place of the pre-activations "
                     f"they are computed from)")
    lines += [f"{s} <- {sp.sstr(kernel.updates[s])}" for s in kernel.states]
    for name, (rate, per, inverted) in kernel.masks.items():
        if per == "weight":
            lines.append(f"({name} is DropConnect: times a keep-mask of its shape drawn once per forward, 1 with "
                         f"probability 1 - p, scaled by 1/(1 - p), p = rate {rate!r}; eval: {name} itself)")
            continue
        scale = ", scaled by 1/(1 - p)" if inverted else ""
        lines.append(f"({name}: random keep-mask, 1 with probability 1 - p, p = rate {rate!r}{scale}; "
                     f"{'one per sequence' if per == 'sequence' else 'drawn every step'}; eval: its expectation)")
    for s, v in kernel.initial.items():
        what = INITIAL_WORDS.get(v, v) if isinstance(v, str) else repr(v)
        lines.append(f"(state0=None: {s} starts at {what}; the other states at 0)")
    return lines
