#!/usr/bin/env bash
# Regenerate this fixture's drizzle/ with the pinned drizzle-kit 0.31.11 from tests/reference
# (`npm ci --prefix tests/reference` first). Pass --force to replace the committed folder: the
# `when` values and random names change.
#
# Steps, in journal order:
#   0000  generate (00_schema.ts)
#   0001  generate --custom --name untouched: left exactly as drizzle-kit writes it (its header
#         comment, no newline)
#   0002  generate (02_schema.ts)
#   0003  generate --custom --name comments_only, body 03_comments_only.sql (only comments, in
#         two chunks)
#   0004  generate --custom --name emptied, then truncated to 0 bytes: THE USER'S ACTION (someone
#         emptied the file instead of deleting the migration), not something drizzle-kit writes
#   0005  generate (05_schema.ts)
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../kit.sh"
kit_init "$here/../../../../reference" "$@"
kit_schema "$here/00_schema.ts"
kit_custom untouched
kit_schema "$here/02_schema.ts"
kit_custom comments_only "$here/03_comments_only.sql"
kit_custom emptied
: >"$(kit_file emptied)" # the user's truncation
kit_schema "$here/05_schema.ts"
