import { defineConfig } from 'drizzle-kit';

// drizzle-kit is not a dependency of this example: its drizzle/ folder was generated with the pinned
// drizzle-kit of tests/reference (scripts/history/generate.sh). In your app, it is a devDependency.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/schema.ts',
  out: './drizzle',
  dbCredentials: {
    url: process.env.DATABASE_URL ?? 'postgres://localhost:5432/minimal',
  },
});
