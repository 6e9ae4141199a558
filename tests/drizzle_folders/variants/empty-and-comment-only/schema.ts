import { index, pgEnum, pgTable, serial, text, timestamp } from 'drizzle-orm/pg-core';

export const eventLevel = pgEnum('event_level', ['info', 'warning', 'error']);

export const events = pgTable(
  'events',
  {
    id: serial('id').primaryKey(),
    name: text('name').notNull(),
    source: text('source'),
    level: eventLevel('level').notNull().default('info'),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('events_level_at_index').on(t.level, t.at)],
);
