"""Rule-based readers that solve each task from the prompt text alone.

An oracle sees what the model sees: the prompt and the two candidate strings.
It knows nothing of the generators (no templates, no pools): it reads the code
with a small lexer or looks at the last line, and returns the index (0 or 1)
of the candidate that must come next.  `tasks check` and the tests require
100% oracle accuracy, which proves every pair is decidable from its context.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}
_STRING_PREFIX = re.compile(r"(?i)(?<![\w])(rb|br|fr|rf|[rbuf])$")


class OracleError(ValueError):
    """The prompt is not code the oracle can read (a generator produced something unexpected)."""


@dataclass
class Scan:
    brackets: list[str] = field(default_factory=list)  # open brackets outside strings, innermost last
    open_string_prefix: str | None = None  # prefix ("", "f", "rb", ...) of a string still open at the end
    open_string_quote: str | None = None


def scan(text: str) -> Scan:
    """Lex Python source far enough to know the open brackets and whether it ends inside a string."""
    result, i = Scan(), 0
    while i < len(text):
        char = text[i]
        if char == "#":
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
        elif char in "\"'":
            prefix_match = _STRING_PREFIX.search(text[max(0, i - 3) : i])
            prefix = prefix_match.group(1).lower() if prefix_match else ""
            quote = char * 3 if text.startswith(char * 3, i) else char
            end = _string_end(text, i + len(quote), quote)
            if end is None:
                result.open_string_prefix, result.open_string_quote = prefix, quote
                return result
            i = end
        elif char in OPENERS:
            result.brackets.append(char)
            i += 1
        elif char in CLOSERS:
            if not result.brackets or result.brackets[-1] != CLOSERS[char]:
                raise OracleError(f"unbalanced {char!r} at offset {i}")
            result.brackets.pop()
            i += 1
        else:
            i += 1
    return result


def _string_end(text: str, start: int, quote: str) -> int | None:
    """Offset just past the closing `quote`, or None when the string is still open at the end.

    A backslash always protects the next character from closing the string, raw strings included.
    """
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith(quote, i):
            return i + len(quote)
        elif text[i] == "\n" and len(quote) == 1:
            raise OracleError(f"newline inside a one-line string at offset {i}")
        else:
            i += 1
    return None


def last_line(prompt: str) -> str:
    """The prompt's last line that has any text (a prompt may end right after a newline)."""
    lines = [line for line in prompt.split("\n") if line.strip()]
    return lines[-1]


def indentation(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def pick(candidates: tuple[str, str], predicate: Callable[[str], bool]) -> int:
    """The index of the one candidate that satisfies `predicate`."""
    hits = [i for i, candidate in enumerate(candidates) if predicate(candidate)]
    if len(hits) != 1:
        raise OracleError(f"{len(hits)} of the candidates {candidates} fit")
    return hits[0]


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split at separators that are not inside brackets or strings."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        char = text[i]
        if char in "\"'":
            end = _string_end(text, i + 1, char)
            i = len(text) if end is None else end
            continue
        if char in OPENERS:
            depth += 1
        elif char in CLOSERS:
            depth -= 1
        elif char == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


# ---------------------------------------------------------------------- oracles


def single_double_quote(prompt: str, candidates: tuple[str, str]) -> int:
    quote = scan(prompt).open_string_quote
    if quote is None:
        raise OracleError("the prompt does not end inside a string")
    return pick(candidates, lambda c: c.startswith(quote))


def final_kwarg(prompt: str, candidates: tuple[str, str]) -> int:
    parameters = split_top_level(last_line(prompt).split("(", 1)[1])
    earlier_default = any("=" in p for p in parameters[:-1])
    return pick(candidates, lambda c: c.startswith("=") == earlier_default)


def set_or_string(prompt: str, candidates: tuple[str, str]) -> int:
    name = last_line(prompt).strip()
    assignment = re.compile(rf"^\s*{re.escape(name)}\s*(?::[^=]*)?=(?!=)\s*(.+)$")
    values = [m.group(1) for line in prompt.split("\n") if (m := assignment.match(line))]
    if not values:
        raise OracleError(f"no assignment to {name!r}")
    is_set = values[-1].startswith("set(")
    return pick(candidates, lambda c: (".add" in c) == is_set)


def class_init(prompt: str, candidates: tuple[str, str]) -> int:
    match = re.fullmatch(r"\s*self\.(\w+) =", last_line(prompt))
    if not match:
        raise OracleError("the last line is not `self.name =`")
    return pick(candidates, lambda c: c.strip() == match.group(1))


def with_as(prompt: str, candidates: tuple[str, str]) -> int:
    in_with = last_line(prompt).lstrip().startswith("with ")
    return pick(candidates, lambda c: c.endswith("\n") != in_with)


def bracket_brace(prompt: str, candidates: tuple[str, str]) -> int:
    brackets = scan(prompt).brackets
    if not brackets:
        raise OracleError("no open bracket")
    in_dict = brackets[-1] == "{"
    return pick(candidates, lambda c: c.endswith(":") == in_dict)


_READING = ("input", "in", "src", "source", "read", "load", "from")
_WRITING = ("output", "out", "dst", "dest", "target", "write", "save", "to")


def with_open(prompt: str, candidates: tuple[str, str]) -> int:
    match = re.search(r"open\((?:\w+\.)?(\w+),", last_line(prompt))
    if not match:
        raise OracleError("no open(name, ...) on the last line")
    first_word = match.group(1).split("_")[0]
    if first_word in _READING:
        return pick(candidates, lambda c: c == "r")
    if first_word in _WRITING:
        return pick(candidates, lambda c: c == "w")
    raise OracleError(f"cannot tell reading from writing in {match.group(1)!r}")


def bracket_counting(prompt: str, candidates: tuple[str, str]) -> int:
    depth = scan(prompt).brackets.count("[")
    # `]\n` closes one bracket and ends the line: right only at depth 1.
    return pick(candidates, lambda c: (c == "]\n") == (depth == 1))


def for_while(prompt: str, candidates: tuple[str, str]) -> int:
    is_for = last_line(prompt).lstrip().startswith("for ")
    return pick(candidates, lambda c: (c.strip() == "in") == is_for)


def else_elif(prompt: str, candidates: tuple[str, str]) -> int:
    is_else = last_line(prompt).strip() == "else"
    return pick(candidates, lambda c: c.startswith(":") == is_else)


def fstring_brace(prompt: str, candidates: tuple[str, str]) -> int:
    prefix = scan(prompt).open_string_prefix
    if prefix is None:
        raise OracleError("the prompt does not end inside a string")
    return pick(candidates, lambda c: (c.strip() == "{") == ("f" in prefix))


def if_ternary(prompt: str, candidates: tuple[str, str]) -> int:
    is_statement = last_line(prompt).lstrip().startswith("if ")
    return pick(candidates, lambda c: c.startswith(":") == is_statement)


def var_swap(prompt: str, candidates: tuple[str, str]) -> int:
    match = re.fullmatch(r"\s*(\w+), (\w+) = \2,", last_line(prompt))
    if not match:
        raise OracleError("the last line is not a swap `a, b = b,`")
    return pick(candidates, lambda c: c.strip() == match.group(1))


def _pick_indentation(candidates: tuple[str, str], columns: int) -> int:
    # A line indented by n columns starts with a token of n - 1 spaces (the last joins the word).
    return pick(candidates, lambda c: c.strip() == "" and len(c) + 1 == columns)


def indent_for(prompt: str, candidates: tuple[str, str]) -> int:
    header = last_line(prompt)
    if not (header.lstrip().startswith("for ") and header.endswith(":")):
        raise OracleError("the last line is not a for header")
    return _pick_indentation(candidates, indentation(header) + 4)


def while_return_true(prompt: str, candidates: tuple[str, str]) -> int:
    line = last_line(prompt)
    step = {"while True:": 4, "return True": -4}.get(line.strip())
    if step is None:
        raise OracleError("the last line is neither `while True:` nor `return True`")
    return _pick_indentation(candidates, indentation(line) + step)


def lambda_func(prompt: str, candidates: tuple[str, str]) -> int:
    in_lambda = re.search(r"\blambda \w+$", last_line(prompt)) is not None
    return pick(candidates, lambda c: (c == ":") == in_lambda)


def if_equals(prompt: str, candidates: tuple[str, str]) -> int:
    words = last_line(prompt).split()
    in_condition = len(words) == 2 and words[0] in ("if", "elif", "while", "assert", "return")
    return pick(candidates, lambda c: (c.strip() == "==") == in_condition)


def enumerate_range(prompt: str, candidates: tuple[str, str]) -> int:
    match = re.search(r"\bfor ([\w, ]+) in$", last_line(prompt))
    if not match:
        raise OracleError("the last line does not end with `for ... in`")
    word = " enumerate" if "," in match.group(1) else " range"
    return pick(candidates, lambda c: word.startswith(c))


def var_if(prompt: str, candidates: tuple[str, str]) -> int:
    in_condition = last_line(prompt).split()[0] in ("if", "elif", "while")
    return pick(candidates, lambda c: c.startswith(":") == in_condition)


ORACLES: dict[str, Callable[[str, tuple[str, str]], int]] = {
    "single_double_quote": single_double_quote,
    "final_kwarg": final_kwarg,
    "set_or_string": set_or_string,
    "set_or_string_fixedvarname": set_or_string,
    "class_init": class_init,
    "with_as": with_as,
    "bracket_brace": bracket_brace,
    "with_open": with_open,
    "bracket_counting": bracket_counting,
    "for_while": for_while,
    "else_elif": else_elif,
    "fstring_brace": fstring_brace,
    "if_ternary": if_ternary,
    "var_swap": var_swap,
    "indent_for": indent_for,
    "lambda_func": lambda_func,
    "if_equals": if_equals,
    "enumerate_range": enumerate_range,
    "var_if": var_if,
    "while_return_true": while_return_true,
}


def oracle_accuracy(task: str, pairs) -> float:
    """Fraction of prompts (two per pair) where the oracle picks the right candidate."""
    oracle = ORACLES[task]
    hits = sum(oracle(prompt, pair.candidates) == side for pair in pairs for side, prompt in enumerate(pair.prompts))
    return hits / (2 * len(pairs))
