"""Errors rnngen raises for bad specs."""


class SpecError(Exception):
    """A cell spec is invalid. Names the spec file, the line and the symbol."""

    def __init__(self, message, *, file=None, line=None, symbol=None):
        self.message = message
        self.file = file
        self.line = line
        self.symbol = symbol
        super().__init__(str(self))

    def located(self, file, line):
        """Return a copy that names `file` and `line` where they are not set yet."""
        return SpecError(self.message, file=self.file or file,
                         line=self.line if self.line is not None else line, symbol=self.symbol)

    def __str__(self):
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        sym = f" (symbol '{self.symbol}')" if self.symbol is not None else ""
        return f"{where}{self.message}{sym}"
