"""`python -m aiobatches` runs the same program as the `aiobatches` command."""

from aiobatches._cli import main

raise SystemExit(main())
