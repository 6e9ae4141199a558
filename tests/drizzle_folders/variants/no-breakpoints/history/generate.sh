#!/usr/bin/env bash
# Regenerate this fixture's drizzle/ with the pinned drizzle-kit 0.31.11 from tests/reference
# (`npm ci --prefix tests/reference` first). Pass --force to replace the committed folder: the
# `when` values and random names change. Steps: three schemas (one generate each), then a
# custom migration whose body is 03_seed_tags.sql.
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../kit.sh"
kit_init "$here/../../../../reference" "$@"
kit_schema "$here/00_schema.ts"
kit_schema "$here/01_schema.ts"
kit_schema "$here/02_schema.ts"
kit_custom seed_tags "$here/03_seed_tags.sql"
