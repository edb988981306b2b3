"""The library of surrounding code: realistic blocks that carry no task signal.

Three families, each split three ways by template name (`splits.Templates`):
module-level blocks, class members and statements.  Every block is complete,
balanced code (brackets and strings closed, blocks dedented back to where they
started), so it never changes what a task's oracle reads at the end of the
prompt.  Statements never `return`, `break` or `yield`: they must be valid
anywhere, including module level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .codegen import (
    INDENT,
    call_args,
    class_name,
    condition,
    constant_name,
    distinct_vars,
    docstring,
    function_name,
    label,
    lines_at,
    literal,
    number,
    short,
    string,
    var,
)
from .identifiers import MODULES
from .prose import message
from .splits import Template, Templates

if TYPE_CHECKING:
    from .context import PairContext

Maker = Callable[["PairContext", int], str]


# ------------------------------------------------------------------ statements


def _assign_literal(ctx: "PairContext", indent: int) -> str:
    return lines_at(indent, [f"{var(ctx)} = {literal(ctx)}"])


def _assign_call(ctx: "PairContext", indent: int) -> str:
    return lines_at(indent, [f"{var(ctx)} = {function_name(ctx)}({call_args(ctx)})"])


def _assign_arithmetic(ctx: "PairContext", indent: int) -> str:
    op = ctx.choice(["+", "-", "*", "//", "%"])
    return lines_at(indent, [f"{var(ctx)} = {var(ctx)} {op} {ctx.choice([var(ctx), number(ctx)])}"])


def _augmented(ctx: "PairContext", indent: int) -> str:
    return lines_at(indent, [f"{var(ctx)} {ctx.choice(['+=', '-=', '*='])} {ctx.choice([var(ctx), number(ctx)])}"])


def _method_call(ctx: "PairContext", indent: int) -> str:
    method, n_args = ctx.choice(
        [("append", 1), ("extend", 1), ("update", 1), ("pop", 0), ("remove", 1), ("clear", 0), ("sort", 0)]
    )
    return lines_at(indent, [f"{var(ctx)}.{method}({call_args(ctx, n_args, n_args)})"])


def _if_none_default(ctx: "PairContext", indent: int) -> str:
    name = var(ctx)
    return lines_at(indent, [f"if {name} is None:", f"    {name} = {literal(ctx)}"])


def _if_else(ctx: "PairContext", indent: int) -> str:
    name, target = distinct_vars(ctx, 2)
    return lines_at(
        indent,
        [f"if {condition(ctx, name)}:", f"    {target} = {literal(ctx)}", "else:", f"    {target} = {literal(ctx)}"],
    )


def _for_append(ctx: "PairContext", indent: int) -> str:
    item, (source, sink) = short(ctx), distinct_vars(ctx, 2)
    return lines_at(indent, [f"for {item} in {source}:", f"    {sink}.append({item})"])


def _for_if_count(ctx: "PairContext", indent: int) -> str:
    item, (source, counter) = short(ctx), distinct_vars(ctx, 2)
    return lines_at(indent, [f"for {item} in {source}:", f"    if {condition(ctx, item)}:", f"        {counter} += 1"])


def _while_countdown(ctx: "PairContext", indent: int) -> str:
    name = var(ctx)
    return lines_at(indent, [f"while {name} > 0:", f"    {name} -= {ctx.randint(1, 3)}"])


def _try_convert(ctx: "PairContext", indent: int) -> str:
    target, source = distinct_vars(ctx, 2)
    error = ctx.choice(["ValueError", "TypeError", "KeyError", "(ValueError, TypeError)"])
    return lines_at(
        indent, ["try:", f"    {target} = int({source})", f"except {error}:", f"    {target} = {number(ctx)}"]
    )


def _comment(ctx: "PairContext", indent: int) -> str:
    return lines_at(indent, [f"# {message(ctx)}"])


def _list_comprehension(ctx: "PairContext", indent: int) -> str:
    item = short(ctx)
    return lines_at(indent, [f"{var(ctx)} = [{item} for {item} in {var(ctx)} if {condition(ctx, item)}]"])


def _dict_literal(ctx: "PairContext", indent: int) -> str:
    quote = ctx.choice(['"', "'"])
    entries = ", ".join(f"{quote}{var(ctx)}{quote}: {literal(ctx)}" for _ in range(ctx.randint(1, 3)))
    return lines_at(indent, [f"{var(ctx)} = {{{entries}}}"])


def _print_values(ctx: "PairContext", indent: int) -> str:
    return lines_at(indent, [f"print({string(ctx)}, {var(ctx)})"])


def _log_message(ctx: "PairContext", indent: int) -> str:
    level = ctx.choice(["debug", "info", "warning"])
    return lines_at(indent, [f"logger.{level}({string(ctx)}, {var(ctx)})"])


def _fstring_assign(ctx: "PairContext", indent: int) -> str:
    quote = ctx.choice(['"', "'"])
    return lines_at(indent, [f"{var(ctx)} = f{quote}{message(ctx)} {{{var(ctx)}}}{quote}"])


def _with_block(ctx: "PairContext", indent: int) -> str:
    return lines_at(indent, [f"with {var(ctx)}:", f"    {var(ctx)} = {literal(ctx)}"])


def _assert(ctx: "PairContext", indent: int) -> str:
    return lines_at(indent, [f"assert {condition(ctx, var(ctx))}"])


def _unpack(ctx: "PairContext", indent: int) -> str:
    first, second = distinct_vars(ctx, 2)
    return lines_at(indent, [f"{first}, {second} = {function_name(ctx)}({call_args(ctx, 0, 2)})"])


def _attribute_assign(ctx: "PairContext", indent: int) -> str:
    return lines_at(indent, [f"{var(ctx)}.{var(ctx)} = {literal(ctx)}"])


def _get_with_default(ctx: "PairContext", indent: int) -> str:
    return lines_at(indent, [f"{var(ctx)} = {var(ctx)}.get({label(ctx)}, {literal(ctx)})"])


STATEMENTS: Templates[Maker] = Templates(
    "statement_snippets",
    [
        Template("assign_literal", _assign_literal),
        Template("assign_call", _assign_call),
        Template("assign_arithmetic", _assign_arithmetic),
        Template("augmented", _augmented),
        Template("method_call", _method_call),
        Template("if_none_default", _if_none_default),
        Template("if_else", _if_else),
        Template("for_append", _for_append),
        Template("for_if_count", _for_if_count),
        Template("while_countdown", _while_countdown),
        Template("try_convert", _try_convert),
        Template("comment", _comment),
        Template("list_comprehension", _list_comprehension),
        Template("dict_literal", _dict_literal),
        Template("print_values", _print_values),
        Template("log_message", _log_message),
        Template("fstring_assign", _fstring_assign),
        Template("with_block", _with_block),
        Template("assert", _assert),
        Template("unpack", _unpack),
        Template("attribute_assign", _attribute_assign),
        Template("get_with_default", _get_with_default),
    ],
)


def statement_block(ctx: "PairContext", indent: int) -> str:
    return ctx.template(STATEMENTS)(ctx, indent)


# --------------------------------------------------------------- module level


def _imports(ctx: "PairContext", indent: int) -> str:
    modules = sorted({ctx.filler_name(MODULES) for _ in range(ctx.randint(1, 4))})
    return lines_at(0, [f"import {m}" for m in modules]) + "\n"


def _constant(ctx: "PairContext", indent: int) -> str:
    return lines_at(0, [f"{constant_name(ctx)} = {literal(ctx)}" for _ in range(ctx.randint(1, 3))]) + "\n"


def _function_return(ctx: "PairContext", indent: int) -> str:
    a, b = distinct_vars(ctx, 2)
    doc = docstring(ctx, INDENT) if ctx.chance(0.4) else ""
    op = ctx.choice(["+", "-", "*", "and", "or"])
    return f"def {function_name(ctx)}({a}, {b}):\n{doc}" + lines_at(INDENT, [f"return {a} {op} {b}"]) + "\n"


def _function_loop(ctx: "PairContext", indent: int) -> str:
    (source, result), item = distinct_vars(ctx, 2), short(ctx)
    body = [
        f"{result} = []",
        f"for {item} in {source}:",
        f"    if {condition(ctx, item)}:",
        f"        {result}.append({item})",
        f"return {result}",
    ]
    return f"def {function_name(ctx)}({source}):\n{docstring(ctx, INDENT)}" + lines_at(INDENT, body) + "\n"


def _function_lookup(ctx: "PairContext", indent: int) -> str:
    key, table = var(ctx), constant_name(ctx)
    quote = ctx.choice(['"', "'"])
    entries = ", ".join(f"{quote}{var(ctx)}{quote}: {number(ctx)}" for _ in range(ctx.randint(2, 4)))
    body = [f"{table} = {{{entries}}}", f"return {table}.get({key}, {literal(ctx)})"]
    return f"def {function_name(ctx)}({key}):\n" + lines_at(INDENT, body) + "\n"


def _function_try(ctx: "PairContext", indent: int) -> str:
    arg, value = distinct_vars(ctx, 2)
    body = [
        "try:",
        f"    {value} = {function_name(ctx)}({arg})",
        f"except {ctx.choice(['OSError', 'ValueError', 'KeyError', 'Exception'])}:",
        "    return None",
        f"return {value}",
    ]
    return f"def {function_name(ctx)}({arg}):\n" + lines_at(INDENT, body) + "\n"


def _function_while(ctx: "PairContext", indent: int) -> str:
    n, total = distinct_vars(ctx, 2)
    body = [f"{total} = 0", f"while {n} > 0:", f"    {total} += {n} % 10", f"    {n} //= 10", f"return {total}"]
    return f"def {function_name(ctx)}({n}):\n" + lines_at(INDENT, body) + "\n"


def _function_fstring(ctx: "PairContext", indent: int) -> str:
    arg = var(ctx)
    quote = ctx.choice(['"', "'"])
    body = [f"return f{quote}{message(ctx)} {{{arg}}}{quote}"]
    return f"def {function_name(ctx)}({arg}):\n" + lines_at(INDENT, body) + "\n"


def _class_with_method(ctx: "PairContext", indent: int) -> str:
    attr = var(ctx)
    lines = [f"{attr} = {literal(ctx)}", "", f"def {function_name(ctx)}(self):", f"    return self.{attr}"]
    return f"class {class_name(ctx)}:\n" + lines_at(INDENT, lines) + "\n"


def _class_with_init(ctx: "PairContext", indent: int) -> str:
    a, b = distinct_vars(ctx, 2)
    lines = [f"def __init__(self, {a}, {b}):", f"    self.{a} = {a}", f"    self.{b} = {b}"]
    return f"class {class_name(ctx)}({class_name(ctx)}):\n" + lines_at(INDENT, lines) + "\n"


def _typed_value(ctx: "PairContext") -> str:
    kind = ctx.choice(["int", "str", "float", "bool"])
    value = {
        "int": lambda: str(ctx.randint(0, 99)),
        "str": lambda: label(ctx),
        "float": lambda: f"{ctx.randint(0, 9)}.{ctx.randint(0, 9)}",
        "bool": lambda: ctx.choice(["True", "False"]),
    }[kind]()
    return f"{kind} = {value}"


def _dataclass(ctx: "PairContext", indent: int) -> str:
    fields = [f"{var(ctx)}: {_typed_value(ctx)}" for _ in range(ctx.randint(1, 3))]
    return f"@dataclass\nclass {class_name(ctx)}:\n" + lines_at(INDENT, fields) + "\n"


def _module_comment(ctx: "PairContext", indent: int) -> str:
    return lines_at(0, [f"# {message(ctx)}"]) + "\n"


def _module_list(ctx: "PairContext", indent: int) -> str:
    return f"{constant_name(ctx)} = [{', '.join(label(ctx) for _ in range(ctx.randint(1, 4)))}]\n\n"


MODULE_BLOCKS: Templates[Maker] = Templates(
    "module_snippets",
    [
        Template("imports", _imports),
        Template("constant", _constant),
        Template("function_return", _function_return),
        Template("function_loop", _function_loop),
        Template("function_lookup", _function_lookup),
        Template("function_try", _function_try),
        Template("function_while", _function_while),
        Template("function_fstring", _function_fstring),
        Template("class_with_method", _class_with_method),
        Template("class_with_init", _class_with_init),
        Template("dataclass", _dataclass),
        Template("module_comment", _module_comment),
        Template("module_list", _module_list),
    ],
)


def module_block(ctx: "PairContext", indent: int) -> str:
    return ctx.template(MODULE_BLOCKS)(ctx, 0)


# --------------------------------------------------------------- class members


def _member_attribute(ctx: "PairContext", indent: int) -> str:
    return lines_at(indent, [f"{var(ctx)} = {literal(ctx)}"]) + "\n"


def _member_getter(ctx: "PairContext", indent: int) -> str:
    attr = var(ctx)
    return lines_at(indent, [f"def {function_name(ctx)}(self):", f"    return self.{attr}"]) + "\n"


def _member_property(ctx: "PairContext", indent: int) -> str:
    attr = var(ctx)
    return lines_at(indent, ["@property", f"def {attr}(self):", f"    return self._{attr}"]) + "\n"


def _member_setter(ctx: "PairContext", indent: int) -> str:
    attr, value = distinct_vars(ctx, 2)
    lines = [
        f"def {function_name(ctx)}(self, {value}):",
        f"    if {condition(ctx, value)}:",
        f"        self.{attr} = {value}",
    ]
    return lines_at(indent, lines) + "\n"


def _member_repr(ctx: "PairContext", indent: int) -> str:
    attr = var(ctx)
    quote = ctx.choice(['"', "'"])
    return (
        lines_at(indent, ["def __repr__(self):", f"    return f{quote}{class_name(ctx)}({{self.{attr}!r}}){quote}"])
        + "\n"
    )


MEMBERS: Templates[Maker] = Templates(
    "member_snippets",
    [
        Template("attribute", _member_attribute),
        Template("getter", _member_getter),
        Template("property", _member_property),
        Template("setter", _member_setter),
        Template("repr", _member_repr),
    ],
)


def member_block(ctx: "PairContext", indent: int) -> str:
    return ctx.template(MEMBERS)(ctx, indent)
