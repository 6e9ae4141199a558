# shellcheck shell=bash
# Shared by tests/drizzle_folders/variants/*/history/generate.sh: the drizzle-kit steps a team
# takes, run with a pinned drizzle-kit found through NODE_PATH (the fixture folders have no
# package.json of their own). Source this file, then:
#
#   kit_init REFERENCE_DIR "$@"   cd to the fixture project (the history/ folder's parent), check
#                                 the kit is installed, remove drizzle/ (only with --force)
#   kit_schema FILE               FILE becomes schema.ts, then `drizzle-kit $KIT_GENERATE`
#                                 (KIT_GENERATE: `generate`, or `generate:pg` for the 0.20 kit)
#   kit_custom NAME [BODY_FILE]   `drizzle-kit generate --custom --name NAME`, then BODY_FILE typed
#                                 below drizzle-kit's header line (a newline, then the body), as the
#                                 custom/ fixture does
#   kit_file NAME                 the path of the one migration file whose tag ends in _NAME
#
# Every generate waits a little over a second first: the timestamp, unix and supabase prefixes
# count seconds, and one second per migration keeps their tags apart. drizzle-kit stamps `when`
# with the current time, so a regenerated folder has new `when` values, hashes and random names.
set -euo pipefail

kit_init() {
  local reference="$1"
  shift
  KIT_PROJECT="$(cd "$(dirname "${BASH_SOURCE[1]}")/.." && pwd)"
  KIT_REFERENCE="$(cd "$reference" && pwd)"
  KIT="$KIT_REFERENCE/node_modules/.bin/drizzle-kit"
  export NODE_PATH="$KIT_REFERENCE/node_modules"
  [ -x "$KIT" ] || { echo "run: npm ci --prefix $KIT_REFERENCE" >&2; exit 1; }
  cd "$KIT_PROJECT"
  if [ -e drizzle ]; then
    [ "${1:-}" = "--force" ] || { echo "drizzle/ exists; pass --force to regenerate" >&2; exit 1; }
    rm -rf drizzle
  fi
}

kit_schema() {
  sleep 1.1
  cp "$1" schema.ts
  "$KIT" "${KIT_GENERATE:-generate}" </dev/null
}

kit_custom() {
  local name="$1" body="${2:-}" file
  sleep 1.1
  "$KIT" generate --custom --name "$name" </dev/null
  if [ -n "$body" ]; then
    file="$(kit_file "$name")"
    { cat "$file"; echo; cat "$body"; } >"$file.tmp" && mv "$file.tmp" "$file"
  fi
}

kit_file() {
  local matches=(drizzle/*_"$1".sql)
  if [ "${#matches[@]}" -ne 1 ] || [ ! -e "${matches[0]}" ]; then
    echo "not exactly one drizzle/*_$1.sql" >&2
    exit 1
  fi
  echo "${matches[0]}"
}
