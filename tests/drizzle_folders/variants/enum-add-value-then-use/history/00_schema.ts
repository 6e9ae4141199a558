import { pgEnum, pgTable, serial, text } from 'drizzle-orm/pg-core';

export const orderStatus = pgEnum('order_status', ['pending', 'paid', 'shipped']);

export const orders = pgTable('orders', {
  id: serial('id').primaryKey(),
  reference: text('reference').notNull().unique(),
  status: orderStatus('status').notNull().default('pending'),
});
