import { index, integer, pgEnum, pgTable, serial, text, timestamp } from 'drizzle-orm/pg-core';

export const userRole = pgEnum('user_role', ['manager', 'fbo']);

export const users = pgTable(
  'users',
  {
    id: serial('id').primaryKey(),
    email: text('email').notNull().unique(),
    displayName: text('display_name'),
    role: userRole('role').notNull().default('fbo'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => ({ roleIdx: index('users_role_idx').on(t.role) }),
);

export const campaigns = pgTable(
  'campaigns',
  {
    id: serial('id').primaryKey(),
    ownerId: integer('owner_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    title: text('title').notNull(),
    startsAt: timestamp('starts_at', { withTimezone: true }),
  },
  (t) => ({ ownerIdx: index('campaigns_owner_idx').on(t.ownerId) }),
);
