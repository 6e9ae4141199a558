#!/usr/bin/env bash
# Regenerate examples/minimal-app/drizzle/ with the pinned drizzle-kit of tests/reference (run
# `npm ci --prefix tests/reference` first): each NN_schema.ts becomes src/schema.ts in turn and
# `drizzle-kit generate --name <stage>` runs, as the app's developer did. src/schema.ts is left at the
# last stage. drizzle-kit stamps `when` with the current time: a regenerated folder has new hashes and
# timestamps, so never regenerate migrations that were deployed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
app="$(cd "$here/../.." && pwd)"
reference="$(cd "$app/../../tests/reference" && pwd)"
kit="$reference/node_modules/.bin/drizzle-kit"
export NODE_PATH="$reference/node_modules"

cd "$app"
[ -x "$kit" ] || { echo "run: npm ci --prefix tests/reference" >&2; exit 1; }
if [ -e drizzle ]; then
  [ "${1:-}" = "--force" ] || { echo "drizzle/ exists; pass --force to regenerate" >&2; exit 1; }
  rm -rf drizzle
fi
for stage in "$here"/[0-9][0-9]_schema.ts; do
  cp "$stage" src/schema.ts
  case "$(basename "$stage")" in
    01_*) name=notes ;;
    02_*) name=pinned_notes ;;
  esac
  "$kit" generate --name "$name" </dev/null
done
