"""The `aiobatches` command line, a package of commands.

`_main` is the entry point and owns the process (signals, exit codes, errors);
`_options` defines the options several commands share, once; `_list`, `_wait`,
`_watch` and `_serve` are one command each, over `_source` (the API or the demo);
`_output`, `_board`, `_layout`, `_screen` and `_terminal` are the terminal views.
Data goes to stdout only; progress and messages go to stderr (progress only on a
terminal), each message one `aiobatches: ...` line with server text neutralised.
"""

from ._main import main

__all__ = ["main"]
