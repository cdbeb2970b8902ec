"""Render a backend's Jinja template: templates only place the printed lines in fixed loops."""
import functools
import os

import jinja2


@functools.lru_cache(maxsize=None)
def _environment(folder):
    return jinja2.Environment(loader=jinja2.FileSystemLoader(folder), trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined, autoescape=False)


def render(template_path, **context):
    folder, name = os.path.split(os.path.abspath(template_path))
    return _environment(folder).get_template(name).render(**context)


def file_bytes(*paths):
    """The files' contents, for the build hash."""
    out = b""
    for path in paths:
        with open(path, "rb") as f:
            out += f.read()
    return out
