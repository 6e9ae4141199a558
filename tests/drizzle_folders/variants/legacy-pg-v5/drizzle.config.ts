import type { Config } from 'drizzle-kit';

// drizzle-kit 0.20.18 and drizzle-orm 0.30.10 from tests/reference-legacy/node_modules (NODE_PATH),
// see README.md. The 0.20 config names the dialect through `driver: 'pg'` and has no `dialect`;
// `generate:pg` does not connect, the URL is only there because the 0.20 config asks for one.
export default {
  schema: './schema.ts',
  out: './drizzle',
  driver: 'pg',
  dbCredentials: {
    connectionString: process.env.DATABASE_URL ?? 'postgres://localhost:5432/legacy',
  },
} satisfies Config;
