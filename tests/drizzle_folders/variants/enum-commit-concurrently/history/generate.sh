#!/usr/bin/env bash
# Regenerate this fixture's drizzle/ with the pinned drizzle-kit 0.31.11 from tests/reference
# (`npm ci --prefix tests/reference` first). Pass --force to replace the committed folder: the
# `when` values and random names change.
#
# Steps, in journal order:
#   0000  generate (00_schema.ts: an enum and a table), then the team's hand edit: 00_commit.sql
#         (a breakpoint, then `COMMIT;`) appended to the end of the generated file, the
#         drizzle-orm#860 workaround that closes drizzle-orm's transaction before a CONCURRENTLY
#   0001  generate --custom --name tickets_title_concurrently (CREATE INDEX CONCURRENTLY)
#   0002  generate (02_schema.ts: a value added to the enum)
#   0003  generate --custom --name first_urgent_ticket (an INSERT using the new value)
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../kit.sh"
kit_init "$here/../../../../reference" "$@"
kit_schema "$here/00_schema.ts"
first="$(ls drizzle/0000_*.sql)"
cat "$here/00_commit.sql" >>"$first" # the team's edit
kit_custom tickets_title_concurrently "$here/01_tickets_title_concurrently.sql"
kit_schema "$here/02_schema.ts"
kit_custom first_urgent_ticket "$here/03_first_urgent_ticket.sql"
