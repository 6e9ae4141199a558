import { defineConfig } from 'drizzle-kit';

// drizzle-kit and drizzle-orm come from tests/reference/node_modules (NODE_PATH),
// see tests/drizzle_folders/custom/README.md.
export default defineConfig({
  dialect: 'postgresql',
  schema: './schema.ts',
  out: './drizzle',
  dbCredentials: {
    url: process.env.DATABASE_URL ?? 'postgres://localhost:5432/docs',
  },
});
