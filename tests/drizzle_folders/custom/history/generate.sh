#!/usr/bin/env bash
# Regenerate tests/drizzle_folders/custom/drizzle/ with the pinned drizzle-kit from
# tests/reference (run `npm ci --prefix tests/reference` first).
#
# Stages, in order: each NN_schema.ts becomes ../schema.ts and `drizzle-kit generate`
# runs; each NN_name.sql is a `drizzle-kit generate --custom --name name` migration
# whose body is then filled in by hand (appended below drizzle-kit's header line),
# as teams do. drizzle-kit stamps `when` with the current time: a regenerated folder
# has new hashes/timestamps.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
project="$(dirname "$here")"
reference="$(cd "$project/../../reference" && pwd)"
kit="$reference/node_modules/.bin/drizzle-kit"
export NODE_PATH="$reference/node_modules"

cd "$project"
[ -x "$kit" ] || { echo "run: npm ci --prefix tests/reference" >&2; exit 1; }
if [ -e drizzle ]; then
  [ "${1:-}" = "--force" ] || { echo "drizzle/ exists; pass --force to regenerate" >&2; exit 1; }
  rm -rf drizzle
fi

for stage in "$here"/[0-9][0-9]_*; do
  base="$(basename "$stage")"
  case "$base" in
    *_schema.ts)
      cp "$stage" schema.ts
      "$kit" generate </dev/null
      ;;
    *.sql)
      name="${base#[0-9][0-9]_}"; name="${name%.sql}"
      "$kit" generate --custom --name "$name" </dev/null
      file="$(ls drizzle/[0-9][0-9][0-9][0-9]_"$name".sql)"
      { cat "$file"; echo; cat "$stage"; } > "$file.tmp" && mv "$file.tmp" "$file"
      ;;
  esac
done
