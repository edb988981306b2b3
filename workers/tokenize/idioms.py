"""A seeded generator of simple, repetitive Python: the corpus's simple-idiom component (paper A.6).

The paper's pretraining data mixes real code with "Python code designed to
consist of especially simple and repetitive idioms".  This module writes such
programs: strings closed with the quote that opened them, flat and nested lists
closed with the right number of brackets, variables initialized as sets or
strings and then used as such, loops and `while True`, if/elif/else, `with`
statements, f-strings, classes with `__init__`, lambdas, defaults in
signatures, swaps, ternaries.

It has its own block templates and its own identifier and word pools: it
imports nothing from `tasks/`, and `tests/tokenize/test_idioms.py` checks that no task
prompt, no task template string and no held-out (val/test) task identifier
occurs in what it writes.  A document is a function of (seed, index) alone, so
any slice of the corpus can be generated in parallel and regenerated exactly.
"""

from __future__ import annotations

import random
from typing import Callable

# ------------------------------------------------------------------ word pools
# Disjoint from every identifier pool in tasks/identifiers.py (checked by the tests).

NAMES = """
apple banana cherry grape lemon melon peach plum berry olive mango kiwi onion pepper carrot potato tomato radish
garlic ginger walnut almond hazel maple cedar birch willow aspen spruce pine oak elm fir lark robin finch heron
eagle falcon hawk raven crow dove swan goose duck otter beaver badger ferret rabbit hare mole vole shrew lynx puma
tiger lion zebra camel llama alpaca bison moose horse pony mule donkey sheep goat cattle piglet kitten puppy
turtle lizard gecko iris tulip daisy lily rose violet orchid lotus poppy clover fern moss ivy reed cactus pebble
boulder stone rock sand dust clay brick tile plank beam pillar arch dome tower castle bridge tunnel canal harbor
island valley canyon meadow forest desert tundra glacier lagoon marsh swamp creek brook river ocean coast shore
cliff summit ridge slope crater comet planet moon star galaxy nebula orbit rocket probe lander rover satellite
anchor barrel basket bucket candle carpet chair cushion drawer jacket kettle ladder lantern mirror needle pillow
ribbon saddle scissors shovel sponge spoon teapot thimble trumpet violin wagon wallet whistle blanket bottle
hammer helmet jigsaw marble napkin paddle parcel pencil puzzle rocker rudder sailor tinker tailor baker miller
potter weaver farmer hunter keeper ranger pilot driver rider singer dancer painter poet author editor critic
alpha beta gamma epsilon zeta theta kappa lambda_ omega sigma tau upsilon rho chi psi nu xi mu
bronze copper silver golden iron nickel cobalt zinc tin lead carbon helium neon argon xenon radon quartz amber
coral pearl jade ruby topaz opal onyx granite basalt shale slate chalk flint
"""
NAMES = [w for w in NAMES.split() if not w.endswith("_")]
SHORT = ["ii", "jj", "kk", "nn", "xx", "yy", "zz", "aa", "bb", "qq", "ww", "ee", "ix", "jx", "kx", "gg", "hh", "ff"]
VERBS = """
bake boil brew carve chop churn cook dig dry fold glue grind grow hatch herd knit mend milk mix mow paint peel
pick plant plow pour prune reap roast sew shear sift spin stir sweep till trim wash weave whisk wipe
""".split()
CLASSES = """
Apple Orchard Garden Harbor Lighthouse Bakery Kitchen Pantry Cellar Attic Barn Stable Kennel Aviary Aquarium
Planet Comet Rocket Galaxy Lantern Kettle Teapot Wagon Sailor Farmer Potter Weaver Miller Tailor Painter Poet
""".split()
ATTRS = """
colour flavour weight_kg height_cm speed altitude harvest season recipe ingredient portion texture aroma
sweetness ripeness radius volume_l density pressure humidity rainfall sunlight shade temperature_c
""".split()
WORDS = """
sunny cloudy rainy windy snowy foggy misty stormy calm quiet loud bright dim warm cold hot cool fresh stale
ripe raw baked fried boiled roasted sweet sour salty bitter spicy crunchy smooth rough soft hard heavy light
tall short wide narrow deep shallow early late quick slow happy sad brave kind gentle fierce proud humble
the an of in on at by with for from over under near far above below and or but so
""".split()
CALLS = [
    "announce",
    "shout",
    "whisper",
    "display",
    "echo_line",
    "log_line",
    "note",
    "emit_text",
    "say",
    "yell",
    "scribble",
    "record_text",
]
ERRORS = ["KeyError", "IndexError", "LookupError", "OSError", "AssertionError", "NotImplementedError"]

INDENT = "    "


class Writer:
    """One document's random choices."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def name(self) -> str:
        return self.rng.choice(NAMES)

    def names(self, k: int) -> list[str]:
        return self.rng.sample(NAMES, k)

    def short(self) -> str:
        return self.rng.choice(SHORT)

    def words(self, low: int = 1, high: int = 5) -> str:
        return " ".join(self.rng.choice(WORDS + NAMES) for _ in range(self.rng.randint(low, high)))

    def quote(self) -> str:
        return self.rng.choice(['"', "'"])

    def string(self) -> str:
        q = self.quote()
        return f"{q}{self.words()}{q}"

    def number(self) -> str:
        return str(self.rng.choice([self.rng.randint(0, 9), self.rng.randint(0, 99), self.rng.randint(0, 999)]))

    def element(self, kind: str) -> str:
        if kind == "int":
            return str(self.rng.randint(-9, 99))
        if kind == "float":
            return f"{self.rng.randint(0, 9)}.{self.rng.randint(0, 99)}"
        if kind == "name":
            return self.rng.choice(NAMES + SHORT)
        if kind == "str":
            return self.string()
        return self.rng.choice(["True", "False", "None", "0", "1"])

    def value(self) -> str:
        return self.rng.choice(
            [
                self.number(),
                self.string(),
                self.name(),
                f"{self.name()}.{self.rng.choice(ATTRS)}",
                "None",
                "True",
                "False",
            ]
        )

    def condition(self, subject: str | None = None) -> str:
        subject = subject or self.name()
        return self.rng.choice(
            [
                f"{subject} > {self.number()}",
                f"{subject} < {self.number()}",
                f"{subject} == {self.value()}",
                f"{subject} != {self.value()}",
                f"{subject} is None",
                f"{subject} is not None",
                f"not {subject}",
                f"{subject}",
                f"{subject} in {self.name()}",
                f"len({subject}) > {self.rng.randint(0, 9)}",
            ]
        )

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


def _lines(indent: int, lines: list[str]) -> str:
    pad = " " * indent
    return "".join(pad + line + "\n" if line else "\n" for line in lines)


# ------------------------------------------------------------------- blocks
# Each block is complete, balanced code at the given indentation.


def quoted_calls(w: Writer, indent: int) -> str:
    lines = []
    for _ in range(w.rng.randint(1, 4)):
        call = w.rng.choice(CALLS + [f"{w.name()}.{w.rng.choice(CALLS)}", "print", "raise " + w.rng.choice(ERRORS)])
        q = w.quote()
        head = ""
        if w.chance(0.4):  # closed strings of either kind before the open one
            head = ", ".join(w.string() for _ in range(w.rng.randint(1, 2))) + ", "
            if call.startswith("raise"):
                head = ""
        lines.append(f"{call}({head}{q}{w.words(1, 7)}{q})")
    return _lines(indent, lines)


def string_assigns(w: Writer, indent: int) -> str:
    lines = []
    for _ in range(w.rng.randint(1, 4)):
        q = w.quote()
        form = w.rng.randint(0, 3)
        if form == 0:
            lines.append(f"{w.name()} = {q}{w.words()}{q}")
        elif form == 1:
            lines.append(f"{w.name()} = [{', '.join(w.string() for _ in range(w.rng.randint(1, 4)))}]")
        elif form == 2:
            lines.append(f"{w.name()} = {w.name()}.pop({q}{w.name()}{q}, {w.string()})")
        else:
            lines.append(f"{w.name()}.append({q}{w.words(1, 4)}{q})")
    return _lines(indent, lines)


def lists(w: Writer, indent: int) -> str:
    lines = []
    for _ in range(w.rng.randint(1, 4)):
        kind = w.rng.choice(["int", "int", "float", "name", "const", "str"])
        row = lambda lo, hi: ", ".join(w.element(kind) for _ in range(w.rng.randint(lo, hi)))  # noqa: E731
        shape = w.rng.randint(0, 5)
        name = w.name()
        if shape == 0:
            lines.append(f"{name} = [{row(1, 10)}]")
        elif shape == 1:
            lines.append(f"{name} = [[{row(1, 10)}]]")
        elif shape == 2:
            rows = ", ".join(f"[{row(1, 5)}]" for _ in range(w.rng.randint(2, 5)))
            lines.append(f"{name} = [{rows}]")
        elif shape == 3:
            lines.append(f"{name} = [[{row(1, 6)}], [{row(1, 6)}]]")
            lines.append(f"{w.name()} = [{row(1, 8)}]")
        elif shape == 4:
            lines.append(f"{name}.append([{row(1, 6)}])")
        else:
            lines.append(f"{name} = [{w.name()}[{w.short()}] for {w.short()} in range({w.number()})]")
    return _lines(indent, lines)


def set_or_str(w: Writer, indent: int) -> str:
    name, other = w.names(2)
    is_set = w.chance(0.5)
    set_init = w.rng.choice([f"{name} = set()", f"{name}: set[str] = set()", f"{name}: set = set()"])
    str_init = w.rng.choice([f'{name} = ""', f"{name} = ''", f"{name} = str()", f'{name}: str = ""'])
    lines = [set_init if is_set else str_init]
    if w.chance(0.5):
        other_init = w.rng.choice(
            [f"{other} = set()", f'{other} = ""', f"{other} = ''", f"{other} = []", f"{other} = 0"]
        )
        lines.insert(w.rng.randint(0, 1), other_init)
    for _ in range(w.rng.randint(0, 2)):
        lines.append(f"{w.name()} = {w.value()}")
    value = w.rng.choice([w.name(), w.short(), w.string(), f"str({w.name()})"])
    use = w.rng.randint(0, 2)
    op = f"{name}.add({value})" if is_set else f"{name} += {value}"
    if use == 0:
        lines.append(op)
    elif use == 1:
        item = w.short()
        value = item
        op = f"{name}.add({value})" if is_set else f"{name} += {value}"
        lines += [f"for {item} in {w.name()}:", INDENT + op]
    else:
        lines += [f"if {w.condition(value if value.isidentifier() else None)}:", INDENT + op]
    if w.chance(0.3):
        lines.append(f"{name}.add({w.name()})" if is_set else f"{name} += {w.string()}")
    return _lines(indent, lines)


def for_loops(w: Writer, indent: int) -> str:
    item, source, sink = w.short(), w.name(), w.name()
    form = w.rng.randint(0, 4)
    if form == 0:
        body = [f"for {item} in {source}:", f"    {sink}.append({item})"]
    elif form == 1:
        body = [f"for {item}, {w.name()} in enumerate({source}):", f"    {sink}[{item}] = {w.value()}"]
    elif form == 2:
        body = [f"for {item} in range({w.rng.choice([w.number(), f'len({source})'])}):", f"    {sink} += {item}"]
    elif form == 3:
        inner = w.short()
        body = [f"for {item} in {source}:", f"    for {inner} in {item}:", f"        {sink}.append({inner})"]
    else:
        body = [f"for {item} in {source}:", f"    if {w.condition(item)}:", f"        {sink} += 1"]
    return _lines(indent, body)


def while_loops(w: Writer, indent: int) -> str:
    name = w.name()
    form = w.rng.randint(0, 2)
    if form == 0:
        body = ["while True:", f"    {name} = {w.name()}()", f"    if {w.condition(name)}:", "        break"]
    elif form == 1:
        body = [f"while {name} > 0:", f"    {name} -= {w.rng.randint(1, 3)}"]
    else:
        body = [f"while {w.condition(name)}:", f"    {name} = {name}.{w.rng.choice(ATTRS)}"]
    return _lines(indent, body)


def if_chains(w: Writer, indent: int) -> str:
    name, target = w.names(2)
    lines = [f"if {w.condition(name)}:", f"    {target} = {w.value()}"]
    for _ in range(w.rng.randint(0, 2)):
        lines += [f"elif {w.condition(name)}:", f"    {target} = {w.value()}"]
    if w.chance(0.7):
        lines += ["else:", f"    {target} = {w.value()}"]
    return _lines(indent, lines)


def comparisons(w: Writer, indent: int) -> str:
    name = w.name()
    form = w.rng.randint(0, 3)
    if form == 0:
        lines = [f"{name} = {w.value()}", f"if {name} == {w.value()}:", f"    {name} = {w.value()}"]
    elif form == 1:
        lines = [f"{name} = True", f"if {name} == True:", f"    {w.name()} = False"]
    elif form == 2:
        lines = [f"{name} = {w.value()} if {w.condition()} else {w.value()}"]
    else:
        lines = [f"if {w.condition(name)}:", f"    {w.name()} = {w.value()} if {w.condition()} else {w.value()}"]
    return _lines(indent, lines)


def with_blocks(w: Writer, indent: int) -> str:
    stem = w.name()
    form = w.rng.randint(0, 3)
    q = w.quote()
    if form == 0:
        lines = [f"with open({stem}_file, {q}r{q}) as fh:", f"    {w.name()} = fh.readlines()"]
    elif form == 1:
        lines = [f"with open({stem}_file, {q}w{q}) as fh:", f"    fh.write({w.name()})"]
    elif form == 2:
        lines = [f"{w.name()} = open({stem}_file)", f"{w.name()}.seek(0)"]
    else:
        lines = [
            f"with {w.name()}.{w.rng.choice(['lock', 'guard', 'session_scope()', 'opened()'])}:",
            f"    {w.name()} = {w.value()}",
        ]
    return _lines(indent, lines)


def fstrings(w: Writer, indent: int) -> str:
    lines = []
    for _ in range(w.rng.randint(1, 3)):
        q, name = w.quote(), w.name()
        call = w.rng.choice(CALLS + ["print"])
        if w.chance(0.5):
            lines.append(f"{call}(f{q}{w.words(1, 3)} {{{name}}} {w.words(1, 2)}{q})")
        else:
            lines.append(f"{call}({q}{w.words(1, 3)}{q}, {name})")
    return _lines(indent, lines)


def dicts(w: Writer, indent: int) -> str:
    q = w.quote()
    keys = w.names(w.rng.randint(1, 4))
    if w.chance(0.5):
        body = ", ".join(f"{q}{k}{q}: {w.value()}" for k in keys)
        return _lines(indent, [f"{w.name()} = {{{body}}}"])
    body = ", ".join(f"{q}{k}{q}" for k in keys)
    return _lines(indent, [f"{w.name()} = [{body}]"])


def lambdas(w: Writer, indent: int) -> str:
    item = w.short()
    if w.chance(0.5):
        return _lines(indent, [f"{w.name()} = sorted({w.name()}, key=lambda {item}: {item}.{w.rng.choice(ATTRS)})"])
    return _lines(indent, [f"{w.name()} = lambda {item}: {item} + {w.number()}"])


def swaps(w: Writer, indent: int) -> str:
    a, b = w.names(2)
    form = w.rng.randint(0, 2)
    if form == 0:
        return _lines(indent, [f"{a}, {b} = {b}, {a}"])
    if form == 1:
        return _lines(indent, [f"{a}, {b} = {b}, {a} + {b}"])
    return _lines(indent, [f"{a}, {b} = {b}, {a} % {b}"])


def calls(w: Writer, indent: int) -> str:
    return _lines(indent, [f"{w.name()} = {w.name()}({', '.join(w.value() for _ in range(w.rng.randint(0, 3)))})"])


BLOCKS: list[tuple[Callable[[Writer, int], str], float]] = [
    (quoted_calls, 3.0),
    (string_assigns, 1.5),
    (lists, 3.0),
    (set_or_str, 3.0),
    (for_loops, 1.5),
    (while_loops, 1.0),
    (if_chains, 1.0),
    (comparisons, 1.0),
    (with_blocks, 1.0),
    (fstrings, 1.0),
    (dicts, 1.0),
    (lambdas, 0.5),
    (swaps, 0.5),
    (calls, 1.0),
]


def _body(w: Writer, indent: int, n_blocks: int) -> str:
    makers, weights = zip(*BLOCKS)
    return "".join(w.rng.choices(makers, weights)[0](w, indent) for _ in range(n_blocks))


def _function(w: Writer, indent: int) -> str:
    params = w.names(w.rng.randint(0, 3))
    if params and w.chance(0.4):
        params = params[:-1] + [f"{params[-1]}=None"]
        if w.chance(0.5):
            params.append(f"{w.name()}={w.value()}")
    head = _lines(indent, [f"def {w.rng.choice(VERBS)}_{w.name()}({', '.join(params)}):"])
    body = _body(w, indent + 4, w.rng.randint(1, 5))
    tail = _lines(
        indent + 4, [w.rng.choice([f"return {w.name()}", "return True", "return None", f"return {w.value()}"])]
    )
    return head + body + tail


def _class(w: Writer, indent: int) -> str:
    attrs = w.names(w.rng.randint(1, 4))
    lines = [f"class {w.rng.choice(CLASSES)}:", f"    def __init__(self, {', '.join(attrs)}):"]
    lines += [f"        self.{a} = {a}" for a in w.rng.sample(attrs, len(attrs))]
    out = _lines(indent, lines + [""])
    for _ in range(w.rng.randint(0, 2)):
        out += _lines(indent + 4, [f"def {w.rng.choice(VERBS)}(self):"])
        out += _body(w, indent + 8, w.rng.randint(1, 3))
        out += (
            _lines(indent + 8, [w.rng.choice(["return True", f"return self.{w.rng.choice(attrs)}", "return None"])])
            + "\n"
        )
    return out


def document(seed: int, index: int) -> str:
    """The `index`-th generated program of the corpus with this seed."""
    w = Writer(random.Random(f"sparsepipe-idioms:{seed}:{index}"))
    parts = []
    for _ in range(w.rng.randint(2, 6)):
        kind = w.rng.random()
        if kind < 0.4:
            parts.append(_function(w, 0))
        elif kind < 0.6:
            parts.append(_class(w, 0))
        else:
            parts.append(_body(w, 0, w.rng.randint(1, 4)))
    return "\n".join(parts)


def documents(seed: int, start: int, stop: int) -> list[str]:
    return [document(seed, index) for index in range(start, stop)]
