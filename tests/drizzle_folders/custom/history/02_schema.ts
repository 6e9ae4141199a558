import {
  bigserial,
  index,
  integer,
  jsonb,
  pgSchema,
  serial,
  text,
  timestamp,
  varchar,
} from 'drizzle-orm/pg-core';

export const app = pgSchema('app');

export const documentStatus = app.enum('document_status', ['draft', 'published', 'archived']);

export const accounts = app.table('accounts', {
  id: serial('id').primaryKey(),
  email: varchar('email', { length: 320 }).notNull().unique(),
  displayName: text('display_name').notNull(),
  locale: varchar('locale', { length: 16 }).notNull().default('fr-FR'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

export const documents = app.table(
  'documents',
  {
    id: serial('id').primaryKey(),
    accountId: integer('account_id')
      .notNull()
      .references(() => accounts.id, { onDelete: 'cascade' }),
    title: text('title').notNull(),
    slug: varchar('slug', { length: 255 }).unique(),
    body: text('body').notNull().default(''),
    status: documentStatus('status').notNull().default('draft'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('documents_account_status_index').on(t.accountId, t.status)],
);

export const auditLog = app.table('audit_log', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  tableName: text('table_name').notNull(),
  operation: varchar('operation', { length: 8 }).notNull(),
  rowId: integer('row_id'),
  detail: jsonb('detail'),
  at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
});
