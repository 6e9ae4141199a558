"""`python -m entrypoint`: see `entrypoint.cli`."""

from entrypoint.cli import main

raise SystemExit(main())
