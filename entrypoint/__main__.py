"""`python -m entrypoint`: see `entrypoint.cli`."""

import gc

# A start command lives seconds (minutes when it waits on a lock or an index build), then execs the app,
# which starts with a runtime of its own. Its imports (psycopg, structlog, pglast) leave tens of thousands
# of objects that every full pass of the cyclic collector walks again: about 60 ms of the 500 ms of CPU a
# fresh apply of 186 migrations takes here, to free a few thousand objects over the whole run (reference
# counting frees the rest, and psycopg's queries leave no cycles behind). So the collector stays off.
gc.disable()

from entrypoint.cli import main  # noqa: E402 - after the collector is off, so the imports run without it

raise SystemExit(main())
