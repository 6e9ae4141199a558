#!/usr/bin/env bash
# Regenerate tests/drizzle_folders/v1/drizzle/ with the pinned drizzle-kit 1.0.0-rc.5 from
# tests/reference-v1 (run `npm ci --prefix tests/reference-v1` first).
#
# Stages, in order: each NN_schema.ts becomes ../schema.ts and `drizzle-kit generate`
# runs; each NN_name.sql is a `drizzle-kit generate --custom --name name` migration whose body
# is then filled in by hand (appended below drizzle-kit's header line), as teams do.
# drizzle-kit 1.0 names each folder <YYYYMMDDHHMMSS>_<name> from the current UTC time, so the
# script waits between stages to give every migration its own second; a regenerated folder has
# new folder names (and so new ledger names).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
project="$(dirname "$here")"
reference="$(cd "$project/../../reference-v1" && pwd)"
kit="$reference/node_modules/.bin/drizzle-kit"
export NODE_PATH="$reference/node_modules"

cd "$project"
[ -x "$kit" ] || { echo "run: npm ci --prefix tests/reference-v1" >&2; exit 1; }
if [ -e drizzle ]; then
  [ "${1:-}" = "--force" ] || { echo "drizzle/ exists; pass --force to regenerate" >&2; exit 1; }
  rm -rf drizzle
fi

for stage in "$here"/[0-9][0-9]_*; do
  base="$(basename "$stage")"
  sleep 1.2
  case "$base" in
    *_schema.ts)
      cp "$stage" schema.ts
      "$kit" generate </dev/null
      ;;
    *.sql)
      name="${base#[0-9][0-9]_}"; name="${name%.sql}"
      "$kit" generate --custom --name "$name" </dev/null
      file="$(ls drizzle/[0-9]*_"$name"/migration.sql)"
      { cat "$file"; echo; cat "$stage"; } > "$file.tmp" && mv "$file.tmp" "$file"
      ;;
  esac
done
