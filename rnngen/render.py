"""Render KernelIR through the Jinja templates."""
import functools
import os

import jinja2

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
TEMPLATES = ("cpu_module.py.j2", "cuda_module.py.j2")


@functools.lru_cache(maxsize=None)
def environment():
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined, autoescape=False)


def template_bytes():
    """The templates' contents, for the build hash."""
    out = b""
    for name in TEMPLATES:
        with open(os.path.join(TEMPLATE_DIR, name), "rb") as f:
            out += f.read()
    return out


def render(ir, specs_folder):
    """The CPU module; `specs_folder` is the header's record of the folder its spec came from."""
    return environment().get_template("cpu_module.py.j2").render(ir=ir, specs_folder=specs_folder)


def render_cuda(ir, specs_folder):
    return environment().get_template("cuda_module.py.j2").render(ir=ir, specs_folder=specs_folder)
