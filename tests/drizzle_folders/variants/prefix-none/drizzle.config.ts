import { defineConfig } from 'drizzle-kit';

// drizzle-kit 0.31.11 and drizzle-orm from tests/reference/node_modules (NODE_PATH), see README.md.
export default defineConfig({
  dialect: 'postgresql',
  schema: './schema.ts',
  out: './drizzle',
  migrations: { prefix: 'none' },
});
