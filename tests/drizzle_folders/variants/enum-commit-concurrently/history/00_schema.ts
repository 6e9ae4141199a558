import { pgEnum, pgTable, serial, text } from 'drizzle-orm/pg-core';

export const ticketPriority = pgEnum('ticket_priority', ['low', 'high']);

export const tickets = pgTable('tickets', {
  id: serial('id').primaryKey(),
  title: text('title').notNull(),
  priority: ticketPriority('priority').notNull().default('low'),
});
