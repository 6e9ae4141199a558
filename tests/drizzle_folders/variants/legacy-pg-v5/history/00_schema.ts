import { pgEnum, pgTable, serial, text, timestamp } from 'drizzle-orm/pg-core';

export const userRole = pgEnum('user_role', ['manager', 'fbo']);

export const users = pgTable('users', {
  id: serial('id').primaryKey(),
  email: text('email').notNull().unique(),
  role: userRole('role').notNull().default('fbo'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});
