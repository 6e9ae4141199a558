#!/usr/bin/env bash
# Regenerate this fixture's drizzle/ with the pinned drizzle-kit 0.20.18 from tests/reference-legacy
# (`npm ci --prefix tests/reference-legacy` first). Pass --force to replace the committed folder:
# the `when` values and random names change. Steps: three schemas (`drizzle-kit generate:pg` each),
# then `generate:pg --custom` (0.20 has no --name: the custom migration gets a random name, the
# newest journal entry) whose body is 03_custom.sql, typed below drizzle-kit's header line.
here="$(cd "$(dirname "$0")" && pwd)"
KIT_GENERATE=generate:pg
source "$here/../../kit.sh"
kit_init "$here/../../../../reference-legacy" "$@"
kit_schema "$here/00_schema.ts"
kit_schema "$here/01_schema.ts"
kit_schema "$here/02_schema.ts"
sleep 1.1
"$KIT" generate:pg --custom </dev/null
tag="$(node -e 'const j = require("./drizzle/meta/_journal.json"); console.log(j.entries.at(-1).tag)')"
file="drizzle/$tag.sql"
{ cat "$file"; echo; cat "$here/03_custom.sql"; } >"$file.tmp" && mv "$file.tmp" "$file"
