#!/usr/bin/env node
// Reference migrator (drizzle-orm 1.0 release candidate) for the test-suite: applies a
// drizzle-kit 1.0 migrations folder (one <YYYYMMDDHHMMSS>_<name>/migration.sql per migration)
// with drizzle-orm's own node-postgres migrator (pinned in package.json).
//
//   DATABASE_URL=postgres://... node tests/reference-v1/migrate.mjs <migrationsFolder>
//
// Env: DATABASE_URL (required), MIGRATIONS_SCHEMA (default "drizzle"),
//      MIGRATIONS_TABLE (default "__drizzle_migrations").
// Exit 0 on success; on failure prints the error message (and its cause's
// message, if any) to stderr and exits 1.
import path from "node:path";
import process from "node:process";
import pg from "pg";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exitCode = 1;
}

async function main() {
  const [folderArg] = process.argv.slice(2);
  if (!folderArg) {
    fail("usage: node migrate.mjs <migrationsFolder>");
    return;
  }
  const url = process.env.DATABASE_URL;
  if (!url) {
    fail("DATABASE_URL is required");
    return;
  }
  const migrationsFolder = path.resolve(folderArg);
  const migrationsSchema = process.env.MIGRATIONS_SCHEMA || "drizzle";
  const migrationsTable = process.env.MIGRATIONS_TABLE || "__drizzle_migrations";

  const pool = new pg.Pool({ connectionString: url, max: 1 });
  // An idle-client error must not crash the process with an unhandled event.
  pool.on("error", () => {});
  try {
    // 1.0: drizzle(pool) would treat the pool as a config object; the client goes in `client`.
    const db = drizzle({ client: pool });
    await migrate(db, { migrationsFolder, migrationsSchema, migrationsTable });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    fail(message);
    const cause = err && typeof err === "object" ? err.cause : undefined;
    if (cause !== undefined && cause !== null) {
      const causeMessage = cause instanceof Error ? cause.message : String(cause);
      if (causeMessage && causeMessage !== message) fail(`cause: ${causeMessage}`);
    }
  } finally {
    try {
      await pool.end();
    } catch {
      // ignore: we are exiting anyway
    }
  }
}

await main();
