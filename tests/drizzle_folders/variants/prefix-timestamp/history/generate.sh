#!/usr/bin/env bash
# Regenerate this fixture's drizzle/ with the pinned drizzle-kit 0.31.11 from tests/reference
# (`npm ci --prefix tests/reference` first). Pass --force to replace the committed folder: the
# tags, `when` values and random names change. Steps: the three schemas, one generate each.
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../kit.sh"
kit_init "$here/../../../../reference" "$@"
kit_schema "$here/00_schema.ts"
kit_schema "$here/01_schema.ts"
kit_schema "$here/02_schema.ts"
