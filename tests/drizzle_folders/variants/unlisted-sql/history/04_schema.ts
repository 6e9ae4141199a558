import { boolean, index, pgTable, serial, text, timestamp } from 'drizzle-orm/pg-core';

export const notes = pgTable(
  'notes',
  {
    id: serial('id').primaryKey(),
    body: text('body').notNull(),
    pinned: boolean('pinned').notNull().default(false),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('notes_pinned_index').on(t.pinned)],
);
