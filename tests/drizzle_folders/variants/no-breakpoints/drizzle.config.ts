import { defineConfig } from 'drizzle-kit';

// drizzle-kit 0.31.11 and drizzle-orm from tests/reference/node_modules (NODE_PATH), see README.md.
// breakpoints: false joins a migration's statements with a newline, without
// `--> statement-breakpoint`, so drizzle-orm sends each file as one query.
export default defineConfig({
  dialect: 'postgresql',
  schema: './schema.ts',
  out: './drizzle',
  breakpoints: false,
});
