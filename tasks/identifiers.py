"""Identifier pools the generators draw names from.

Every pool is split three ways by `splits.partition`, so a name that appears in
a train prompt never appears in a val or test prompt.  Words are plain lower
case (no underscores) because several tasks ask the model to predict ` name`
as one token, and a 2048-token BPE merges common whole words, not compounds.
No pool contains Python keywords or builtins: a variable called `list` or
`type` would change what the surrounding code means.
"""

from __future__ import annotations

from .splits import Pool

VARIABLES = Pool(
    "variables",
    """
    items values names data result results count total index key value name path line lines text node nodes
    parent child children size length width height offset start end stop step limit buffer chunk chunks block
    blocks entry entries record records row rows column columns field fields config options settings params source
    target output message error errors status state mode flag flags level depth score scores weight weights prefix
    suffix pattern token tokens word words item element elements member members group groups table tables user
    users host port address url query request response header headers body content payload packet frame event
    events task tasks job jobs worker queue stack cache counter timer delay timeout interval retries attempt batch
    sample samples label labels tag tags title description summary report folder directory root base parts part
    piece segment section sections module modules package version number amount price cost rate ratio factor scale
    minimum maximum low high left right top bottom first last previous pending visited seen found missing extra
    matches match candidate candidates option choice keys pair pairs mapping lookup registry handler callback
    context session connection client server channel stream reader writer parser encoder decoder account order
    orders product products customer invoice payment balance transaction edge edges graph tree leaf point points
    vector matrix shape color image pixel window widget layout style theme font icon button menu action command
    args argv environ prompt answer question reply signal alarm clock date time day month year
    week hour minute second delta duration elapsed remaining progress percent fraction digits letters symbol
    symbols string strings bits mask subtotal rank position location region
    zone area volume capacity quota usage metric metrics stats average median variance warning notice
    """,
)

# Loop indices and the short names that code uses for counters and coordinates.
SHORT_NAMES = Pool("short_names", "i j k n m x y z a b c d p q r s t u v w idx pos num cnt tmp val obj elem")

VERBS = Pool(
    "verbs",
    """
    load save parse read write build create make update delete remove add insert append find search check validate
    process handle render format convert compute calculate count collect gather filter sort merge split join
    normalize clean reset clear close open start stop run execute apply register connect send receive fetch store
    get set init setup prepare configure encode decode compress extract transform resolve lookup scan match compare
    copy move rename wrap unwrap flush emit dispatch schedule cancel retry wait notify publish subscribe
    """,
)

CLASS_NAMES = Pool(
    "class_names",
    """
    Parser Reader Writer Handler Manager Builder Config Client Server Node Tree Graph Cache Queue Buffer Record Entry
    Table Column Token Lexer Session Request Response Message Event Task Worker Job Item Store Registry Loader
    Formatter Validator Counter Timer Logger Router Channel Stream Connection Account User Document Report Plugin
    Widget Window Point Vector Matrix Shape Circle Rectangle Scheduler Dispatcher Monitor Tracker Profile Settings
    Context Result Error Exporter Importer Converter Renderer Serializer Adapter Wrapper Proxy Service Resource
    """,
)

# Stems for the file-name pairs of the with_open task: a reading and a writing
# prefix share one stem (input_path / output_path), so only the prefix differs.
READ_WRITE_PREFIXES = Pool(
    "read_write_prefixes",
    "input/output in/out src/dst source/target read/write load/save from/to",
)
FILE_STEMS = Pool("file_stems", "path file filename fname name file_path filepath fn handle location")

# Standard-library modules for import lines.
MODULES = Pool(
    "modules",
    """
    os sys re json time math random logging collections itertools functools pathlib typing dataclasses subprocess
    shutil tempfile datetime string struct hashlib base64 csv io argparse threading socket copy enum abc contextlib
    textwrap operator heapq bisect glob fnmatch uuid decimal fractions statistics pickle zlib gzip queue signal
    inspect traceback warnings weakref unittest difflib platform getpass locale codecs pprint
    """,
)
