"""Modyn's Python-in-YAML fields, recognised without running them: each standard snippet maps to a named
decoder, transform or label/output transformer of ours.

A snippet is parsed (never executed), its imports resolved (`np` -> `numpy`, `Image` -> `PIL.Image`),
its argument renamed, one-use local names inlined, docstrings and `warnings` blocks dropped, and what
it returns printed back in one canonical form (so names, whitespace, quotes and comments do not
matter). That form is matched against Modyn's snippets. Anything else is refused in one line naming
the field and the named alternatives; a pipeline may always name a decoder directly instead.

>>> bytes_parser('''
... import numpy as np
... def bytes_parser_function(data: bytes):
...     return np.frombuffer(data, dtype=np.float32).reshape(1, 28, 28)  # a comment
... ''')
('raw', {'dtype': 'float32', 'shape': [1, 28, 28]})
>>> output_transformer("import torch\\ndef evaluation_transformer_function(y):\\n    return torch.argmax(y, dim=-1)")
'argmax'
>>> transformation("transforms.Normalize((0.1307,), (0.3081,))")
{'name': 'Normalize', 'mean': [0.1307], 'std': [0.3081]}
"""

from __future__ import annotations

import ast
import re

DECODER_NAMES = "raw, float32_vector, csv_row, image, text, criteo"


class SnippetError(ValueError):
    """A snippet that is not one of Modyn's standard ones (or not Python)."""


class _Canonical(ast.NodeTransformer):
    """Imported names to their full dotted names, the argument to ARG."""

    def __init__(self, imports: dict[str, str], argument: str) -> None:
        self.imports, self.argument = imports, argument

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id == self.argument:
            return ast.Name("ARG", ast.Load())
        if node.id in self.imports:
            return ast.parse(self.imports[node.id], mode="eval").body
        return node


def _imports(tree: ast.Module) -> dict[str, str]:
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {
                a.asname or a.name.split(".")[0]: a.name if a.asname else a.name.split(".")[0] for a in node.names
            }
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {a.asname or a.name: f"{node.module}.{a.name}" for a in node.names}
    return names


def _returned(source: str, function: str) -> str:
    """The canonical form of what `function` in `source` returns."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise SnippetError(f"not Python: {exc.msg} (line {exc.lineno})") from None
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    if len(defs) != 1 or len(defs[0].args.args) != 1:
        raise SnippetError(f"needs one function {function}(x), as in Modyn")
    local: dict[str, ast.expr] = {}
    returned = None
    for statement in defs[0].body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring
        if isinstance(statement, ast.With) and "warnings" in ast.unparse(statement.items[0].context_expr):
            continue  # Modyn's `with warnings.catch_warnings(): ...`
        if (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            local[statement.targets[0].id] = _inline(statement.value, local)
        elif isinstance(statement, ast.Return) and statement.value is not None and returned is None:
            returned = _inline(statement.value, local)
        else:
            raise SnippetError(
                f"line {statement.lineno}: {ast.unparse(statement)[:60]!r} is not in any of Modyn's snippets"
            )
    if returned is None:
        raise SnippetError(f"{function} returns nothing")
    canonical = _Canonical(_imports(tree), defs[0].args.args[0].arg).visit(returned)
    return ast.unparse(canonical)


def _inline(node: ast.expr, local: dict[str, ast.expr]) -> ast.expr:
    class Inline(ast.NodeTransformer):
        def visit_Name(self, name: ast.Name) -> ast.AST:
            return local.get(name.id, name)

    return Inline().visit(node)


_FLOAT32 = r"(?:dtype=)?(?:(?:numpy|torch)\.float32|'float32')"
_BYTES = [  # (pattern over the canonical form, decoder, its config from the match)
    (r"^PIL\.Image\.open\(io\.BytesIO\(ARG\)\)\.convert\('(RGB|L)'\)$", "image", lambda m: {"mode": m[1]}),
    (r"^PIL\.Image\.open\(io\.BytesIO\(ARG\)\)$", "image", lambda m: {"mode": None}),
    (rf"^(?:torch\.from_numpy\()?(?:torch|numpy)\.frombuffer\(ARG, {_FLOAT32}\)\)?\.reshape\(([\d, ()\[\]-]+)\)$",
     "raw", lambda m: {"dtype": "float32", "shape": _shape(m[1])}),
    (rf"^(?:torch\.from_numpy\()?(?:torch|numpy)\.frombuffer\(ARG, {_FLOAT32}\)\)?$", "float32_vector", lambda m: {}),
    (r"^str\(ARG, '(?:utf8|utf-8|UTF-8)'\)$|^(?:bytes\(ARG\)|ARG)\.decode\('(?:utf8|utf-8|UTF-8)'\)$|"
     r"^(?:bytes\(ARG\)|ARG)\.decode\(\)$", "text", lambda m: {}),
    (rf"^pandas\.read_csv\(io\.BytesIO\(ARG\)(, header=None)?\)\.(?:to_numpy\(\)|values)\[0\]\.astype\({_FLOAT32}\)$",
     "csv_row", lambda m: {"header": m[1] is None}),
]  # fmt: skip


def _is_criteo(form: str) -> bool:
    """Modyn's Criteo split, in its torch or numpy spelling: 13 float32 features, then int32 ids at byte 52."""
    match = re.match(r"^\{'numerical_input': (.*), 'categorical_input': (.*)\}$", form)
    if not match:
        return False
    dense, ids = match.groups()
    reads = r"(?:torch|numpy)\.frombuffer\(ARG"
    return bool(
        re.search(rf"{reads}(?:\[:52\])?, {_FLOAT32}(?:, count=13)?\)", dense)
        and ("count=13" in dense or "ARG[:52]" in dense)
        and re.search(rf"{reads}(?:\[52:\])?, (?:dtype=)?(?:numpy|torch)\.int32(?:, offset=52)?\)", ids)
        and ("offset=52" in ids or "ARG[52:]" in ids)
    )


def _shape(text: str) -> list[int]:
    value = ast.literal_eval(text)
    return list(value) if isinstance(value, tuple | list) else [value]


def bytes_parser(source: str) -> tuple[str, dict]:
    """(decoder name, decoder_config) that does what Modyn's `bytes_parser_function` does."""
    form = _returned(source, "bytes_parser_function")
    if _is_criteo(form):
        return "criteo", {}
    for pattern, decoder, config in _BYTES:
        if match := re.match(pattern, form):
            return decoder, config(match)
    raise SnippetError(f"returns {form[:80]!r}, which is none of Modyn's standard parsers; name a decoder "
                       f"instead (data.decoder: {DECODER_NAMES})")  # fmt: skip


_OUTPUTS = {
    "argmax": r"^torch\.argmax\(ARG, (?:dim=)?(?:-1|1)\)$|^ARG\.argmax\((?:dim=)?(?:-1|1)\)$",
    "sigmoid": r"^torch\.sigmoid\(ARG\)(?:\.float\(\))?$",
    "sigmoid_threshold": r"^torch\.ge\(torch\.sigmoid\(ARG\)(?:\.float\(\))?, 0\.5\)$|"
    r"^torch\.sigmoid\(ARG\)(?:\.float\(\))? >= 0\.5$",
}


def output_transformer(source: str) -> str:
    """The name of Modyn's `evaluation_transformer_function`: argmax, sigmoid or sigmoid_threshold."""
    form = _returned(source, "evaluation_transformer_function")
    for name, pattern in _OUTPUTS.items():
        if re.match(pattern, form):
            return name
    raise SnippetError(f"returns {form[:80]!r}, which is none of argmax, sigmoid, sigmoid >= 0.5")


def label_transformer(source: str) -> str:
    """The name of Modyn's `label_transformer_function`: float (a cast to float32)."""
    form = _returned(source, "label_transformer_function")
    if re.match(r"^ARG\.to\((?:dtype=)?torch\.float32\)$|^ARG\.float\(\)$", form):
        return "float"
    raise SnippetError(f"returns {form[:80]!r}, which is not Modyn's float cast; use data.label_transformer: float")


TRANSFORMS = {  # name: its positional parameters, as torchvision's
    "ToTensor": [], "Normalize": ["mean", "std"], "Resize": ["size"], "CenterCrop": ["size"],
    "RandomResizedCrop": ["size", "scale", "ratio"], "RandomHorizontalFlip": ["p"],
}  # fmt: skip


def transformation(source: str) -> dict:
    """One of Modyn's `transformations` (a torchvision.transforms call with literal arguments) as our spec."""
    try:
        call = ast.parse(source.strip(), mode="eval").body
    except SyntaxError:
        raise SnippetError(f"{source!r} is not a Python expression") from None
    prefix, _, name = ast.unparse(call.func).rpartition(".") if isinstance(call, ast.Call) else ("", "", None)
    if name is None or prefix not in ("transforms", "torchvision.transforms", "T", ""):
        raise SnippetError(f"{source!r} is not a torchvision.transforms call")
    if name not in TRANSFORMS:
        raise SnippetError(f"{name} is not supported; supported: {', '.join(TRANSFORMS)}")
    try:
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except ValueError:
        raise SnippetError(f"{source!r}: arguments must be literals") from None
    parameters = TRANSFORMS[name]
    if len(args) > len(parameters) or set(kwargs) - set(parameters):
        raise SnippetError(f"{source!r}: {name} takes {', '.join(parameters) or 'no arguments'} here")
    spec = {"name": name, **dict(zip(parameters, args, strict=False)), **kwargs}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()}
