"""The students' starter files, derived from the reference scripts: `python tests/autograder.py starter`.

A starter holds what the assignment's `Starter` (tests/rubric.py) keeps of the reference script, as written there:
the course's classes and functions, the imports they use and the module-level names they need. Every function
students write (`rubric.todo`: what the rows grade, plus the starter's own) keeps its signature and docstring and
gets a body that raises NotImplementedError naming its handout item. Nothing else of the reference is copied, so
the starter cannot drift from what the grader calls. `release(..., stubs=False)` writes the same file with the
reference's bodies (and what they need) instead of the stubs: the round trip the tests grade.
"""
from __future__ import annotations

import ast
import builtins
import textwrap
from pathlib import Path

import rubric

ROOT = Path(__file__).resolve().parent.parent
BUILTINS = set(dir(builtins))


def names_used(nodes: list[ast.AST]) -> set[str]:
    """Every bare name read in nodes (annotations included) and every `self.<attr>` they touch."""
    used = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                used.add(sub.id)
            elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
                used.add(f"self.{sub.attr}")
    return used


def defined_name(node: ast.stmt) -> list[str]:
    """The module-level names a statement defines (def, class, assignment)."""
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [target.id for target in node.targets if isinstance(target, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


class Script:
    """A reference script's source, its top-level statements by the names they define, and its imports."""

    def __init__(self, path: Path) -> None:
        self.text = path.read_text(encoding="utf-8")
        self.lines = self.text.splitlines()
        self.tree = ast.parse(self.text)
        self.defs = {name: node for node in self.tree.body for name in defined_name(node)}
        self.imports = [node for node in self.tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]

    def segment(self, node: ast.AST) -> list[str]:
        """The source lines of a statement, its decorators included."""
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return self.lines[first - 1:node.end_lineno]


def stub_lines(script: Script, function: ast.FunctionDef, item: str, qualified: str) -> list[str]:
    """The function with its body replaced: the docstring kept, then a TODO and a NotImplementedError."""
    header_end = function.body[0].lineno - 1  # the lines up to the body (decorators, a signature on several lines)
    first = min([function.lineno] + [d.lineno for d in function.decorator_list])
    lines = script.lines[first - 1:header_end]
    indent = " " * function.body[0].col_offset
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        lines += script.lines[body[0].lineno - 1:body[0].end_lineno]
    lines += [f"{indent}# TODO ({item}): write this.",
              f'{indent}raise NotImplementedError("{item} {qualified}: not implemented yet")']
    return lines


def class_lines(script: Script, cls: ast.ClassDef, methods: set[str], todo: dict[str, str]) -> list[str]:
    """The class's source with only `methods` (and its other statements), the TODO ones stubbed."""
    out = script.lines[min([cls.lineno] + [d.lineno for d in cls.decorator_list]) - 1:cls.body[0].lineno - 1]
    previous_end, first = None, True
    for node in cls.body:
        name = node.name if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        gap = script.lines[(previous_end or start - 1):start - 1]
        comments = [line for line in gap if line.strip().startswith("#")]
        previous_end = node.end_lineno
        if name is not None and name not in methods:
            continue
        if not first:  # one blank line between two members, the comments before the next one kept
            out += [""] + comments
        first = False
        qualified = f"{cls.name}.{name}"
        out += stub_lines(script, node, todo[qualified], qualified) if qualified in todo else script.segment(node)
    return out


def emitted_nodes(script: Script, name: str, methods: set[str], todo: dict[str, str]) -> list[ast.AST]:
    """The parts of a top-level definition that the release will hold (stubbed functions' bodies left out)."""
    node = script.defs[name]
    if isinstance(node, ast.ClassDef):
        parts = [base for base in node.bases] + list(node.decorator_list)
        for sub in node.body:
            sub_name = getattr(sub, "name", None)
            if sub_name is None:
                parts.append(sub)
            elif sub_name in methods:
                parts += signature_only(sub) if f"{name}.{sub_name}" in todo else [sub]
        return parts
    return signature_only(node) if name in todo else [node]


def signature_only(function: ast.AST) -> list[ast.AST]:
    return [function.args, *function.decorator_list] + ([function.returns] if function.returns else [])


def closure(script: Script, spec: rubric.Starter, todo: dict[str, str]) -> tuple[list[str], dict[str, set[str]]]:
    """The top-level names the release holds (those kept, then whatever their emitted code needs, recursively) and
    each class's methods."""
    names, methods = [], {}
    pending = list(spec.keep)
    while pending:
        name = pending.pop(0)
        if name in names or name not in script.defs:
            continue
        names.append(name)
        node = script.defs[name]
        if isinstance(node, ast.ClassDef):
            every = {sub.name for sub in node.body if isinstance(sub, ast.FunctionDef)}
            methods[name] = {m for m in every if f"{name}.{m}" not in spec.omit}
            while True:  # an omitted method comes back when kept code calls it
                used = names_used(emitted_nodes(script, name, methods[name], todo))
                wanted = {m for m in every if f"self.{m}" in used or m in used} - methods[name]
                if not wanted:
                    break
                methods[name] |= wanted
        pending += sorted(names_used(emitted_nodes(script, name, methods.get(name, set()), todo)) & script.defs.keys())
    return names, methods


def import_lines(script: Script, used: set[str]) -> list[str]:
    """The reference's imports, each cut down to the names the release uses (wrapped at 120 characters)."""
    out = []
    for node in script.imports:
        kept = [alias for alias in node.names if (alias.asname or alias.name).split(".")[0] in used]
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            kept = node.names
        if not kept:
            continue
        text = ast.unparse(type(node)(**{**{field: getattr(node, field) for field in node._fields}, "names": kept}))
        if len(text) > 120:
            head = f"from {node.module} import ("
            text = "\n".join(textwrap.wrap(", ".join(ast.unparse(alias) for alias in kept) + ")", 120,
                                           initial_indent=head, subsequent_indent=" " * len(head),
                                           break_long_words=False))
        if text.startswith("from hw5_utils") and not any(line.startswith("from hw5_utils") for line in out):
            out.append("")
        out.append(text)
        if text.startswith("from __future__"):
            out.append("")
    return out


def header(assignment: rubric.Assignment, stubs: bool) -> str:
    todo = rubric.todo(assignment)
    items = sorted(set(todo.values()))
    what = (f"Fill in every TODO: {', '.join(items)}. Each raises NotImplementedError until you write it."
            if stubs else "The reference's bodies in place of the TODOs (the release round trip).")
    return (f'"""{assignment.title}: {assignment.edition}, question {assignment.question}. Submit this file as '
            f'{assignment.script}.py.\n\n{textwrap.fill(what, 116)}\n\n'
            f'    python {assignment.script}.py --help\n"""')


def release(assignment: rubric.Assignment, stubs: bool = True) -> str:
    """The text of the assignment's starter (stubs=False: filled with the reference's bodies)."""
    spec = assignment.starter
    script = Script(ROOT / f"{assignment.script}.py")
    todo = rubric.todo(assignment) if stubs else {}
    missing = [name for name in rubric.todo(assignment) if name.split(".")[0] not in script.defs]
    if missing:
        raise ValueError(f"{assignment.name}: the reference defines no {', '.join(missing)}")
    names, methods = closure(script, spec, todo)
    order = sorted(names, key=lambda name: script.defs[name].lineno)
    # the kept definitions in the reference's order, constants before the code using them
    blocks, used = [], set()
    for name in order:
        node = script.defs[name]
        used |= names_used(emitted_nodes(script, name, methods.get(name, set()), todo))
        if isinstance(node, ast.ClassDef):
            lines = class_lines(script, node, methods[name], todo)
        elif isinstance(node, ast.FunctionDef):
            lines = stub_lines(script, node, todo[name], name) if name in todo else script.segment(node)
            if name == spec.main:
                lines[0] = lines[0].replace(f"def {spec.main}(", "def main(", 1)
        else:
            lines = script.segment(node)
        blocks.append("\n".join(lines))
    constants = [b for b, name in zip(blocks, order) if not isinstance(script.defs[name], (ast.ClassDef,
                                                                                             ast.FunctionDef))]
    code = [b for b, name in zip(blocks, order) if isinstance(script.defs[name], (ast.ClassDef, ast.FunctionDef))]
    parts = [header(assignment, stubs), "\n".join(import_lines(script, used - BUILTINS))]
    if constants:
        parts.append("\n".join(constants))
    text = "\n\n".join(parts) + "\n\n\n" + "\n\n\n".join(code)
    return text + '\n\n\nif __name__ == "__main__":\n    main()\n'


def write_release(assignment: rubric.Assignment, out: Path, stubs: bool = True) -> list[Path]:
    """Write the starter (and the data files handed out with it) into the folder out; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{assignment.script}.py"
    path.write_text(release(assignment, stubs), encoding="utf-8")
    written = [path]
    for name in assignment.starter.files:
        written.append(handout_file(name, out / name))
    return written


def handout_file(name: str, path: Path) -> Path:
    """A data file the course hands out with the starter, made by the reference (cs446.npy: 2000 points of the
    "CS446" cloud in the unit square)."""
    if name != "cs446.npy":
        raise ValueError(f"no recipe for the handout file {name}")
    import numpy as np
    import torch

    import hw5_diffusion

    points = hw5_diffusion.sample_glyphs(2000, torch.Generator().manual_seed(0)) / 4 + 0.5  # 4 units wide: [0, 1]
    np.save(path, points.numpy())
    return path
