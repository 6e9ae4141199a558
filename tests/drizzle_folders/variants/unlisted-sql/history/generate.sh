#!/usr/bin/env bash
# Regenerate this fixture's drizzle/ with the pinned drizzle-kit 0.31.11 from tests/reference
# (`npm ci --prefix tests/reference` first). Pass --force to replace the committed folder: the
# `when` values and random names change.
#
# Steps: two schemas (one generate each); then a custom migration `drop_pinned` (body
# 02_drop_pinned.sql) that the user abandons by reverting the journal to what it was before
# (as `git checkout -- drizzle/meta/_journal.json` does), which leaves 0002_drop_pinned.sql
# behind, in no journal entry: THE USER'S LEFTOVER, not something drizzle-kit leaves; then two
# more schemas. The next generate takes idx 2 again (and rewrites meta/0002_snapshot.json), so
# two files start with 0002_.
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../kit.sh"
kit_init "$here/../../../../reference" "$@"
kit_schema "$here/00_schema.ts"
kit_schema "$here/01_schema.ts"
saved="$(mktemp)"
cp drizzle/meta/_journal.json "$saved"
kit_custom drop_pinned "$here/02_drop_pinned.sql"
cp "$saved" drizzle/meta/_journal.json # the user's revert
rm -f "$saved"
kit_schema "$here/03_schema.ts"
kit_schema "$here/04_schema.ts"
