// The old `pnpm db:sync`, emulated for the benchmark: read the journal and the ledger,
// repair drifted rows by position (the runbook's case: ids 283-285 → 8-10), else report "in sync".
//   DATABASE_URL=postgres://... MIGRATIONS_DIR=./drizzle tsx scripts/sync-migrations.ts
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";

interface JournalEntry {
  idx: number;
  when: number;
  tag: string;
}

interface Row {
  id: number;
  hash: string;
  created_at: string | null;
}

async function main(): Promise<void> {
  console.log("🔄 Synchronisation des migrations...");
  const folder = path.resolve(process.env.MIGRATIONS_DIR ?? "./drizzle");
  const journal = JSON.parse(readFileSync(path.join(folder, "meta", "_journal.json"), "utf8")) as {
    entries: JournalEntry[];
  };
  const expected = journal.entries.map((entry) => ({
    tag: entry.tag,
    when: entry.when,
    hash: createHash("sha256").update(readFileSync(path.join(folder, `${entry.tag}.sql`), "utf8")).digest("hex"),
  }));
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    const exists = await client.query("SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS ok");
    const rows: Row[] = exists.rows[0].ok
      ? (await client.query("SELECT id, hash, created_at FROM drizzle.__drizzle_migrations ORDER BY id")).rows
      : [];
    console.log(`📊 Migrations actuelles en base: ${rows.length}`);
    const offset = rows.length > 0 ? rows[0].id : 1;
    const drifted = rows
      .map((row, position) => ({ row, position, want: expected[position] }))
      .filter(
        ({ row, position, want }) =>
          want !== undefined &&
          (row.id !== offset + position || row.hash !== want.hash || Number(row.created_at) !== want.when),
      );
    if (drifted.length === 0) {
      console.log("✅ Migrations déjà synchronisées");
    } else {
      console.log("⚠️  Désynchronisation détectée - correction en cours...");
      console.log(`🔧 Mise à jour de ${drifted.length} migrations...`);
      await client.query("BEGIN");
      for (const { row, position, want } of drifted) {
        await client.query(
          "UPDATE drizzle.__drizzle_migrations SET id = $1, hash = $2, created_at = $3 WHERE id = $4",
          [offset + position, want.hash, want.when, row.id],
        );
        console.log(`   ${row.id} → ${offset + position} (${want.tag})`);
      }
      await client.query("COMMIT");
      console.log("✅ Migrations synchronisées avec succès !");
    }
    console.log("🎯 Système de migrations prêt pour Drizzle");
  } finally {
    await client.end();
  }
}

main().catch((error: unknown) => {
  console.error(`❌ Sync failed: ${error instanceof Error ? error.message : String(error)}`);
  console.error("⚠️  Poursuite du déploiement malgré l'erreur de sync");
});
