import { boolean, index, pgTable, serial, text, timestamp } from 'drizzle-orm/pg-core';

export const notes = pgTable(
  'notes',
  {
    id: serial('id').primaryKey(),
    body: text('body').notNull(),
    pinned: boolean('pinned').notNull().default(false),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [index('notes_pinned_created_at_idx').on(table.pinned, table.createdAt)],
);
