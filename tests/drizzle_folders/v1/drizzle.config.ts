import { defineConfig } from 'drizzle-kit';

// drizzle-kit 1.0.0-rc.5 and drizzle-orm 1.0.0-rc.5 come from tests/reference-v1/node_modules
// (NODE_PATH), see tests/drizzle_folders/v1/README.md.
export default defineConfig({
  dialect: 'postgresql',
  schema: './schema.ts',
  out: './drizzle',
  dbCredentials: {
    url: process.env.DATABASE_URL ?? 'postgres://localhost:5432/docs',
  },
});
