// The old `pnpm db:deploy`, emulated for the benchmark: drizzle-orm's own migrator.
//   DATABASE_URL=postgres://... MIGRATIONS_DIR=./drizzle tsx scripts/deploy-migrations.ts
import path from "node:path";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";

async function main(): Promise<void> {
  const migrationsFolder = path.resolve(process.env.MIGRATIONS_DIR ?? "./drizzle");
  console.log("\n🚀 Running Drizzle migrations...");
  console.log(`📁 Migrations folder: ${migrationsFolder}`);
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 });
  try {
    await migrate(drizzle(pool), { migrationsFolder });
    console.log("✅ Database migrations completed successfully");
    console.log("🎉 All tables and indexes created via Drizzle migrations");
  } finally {
    await pool.end();
  }
}

main().catch((error: unknown) => {
  console.error(`❌ Migration failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
