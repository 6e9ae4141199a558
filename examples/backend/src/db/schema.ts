import { sql } from 'drizzle-orm';
import {
  type AnyPgColumn,
  boolean,
  date,
  index,
  integer,
  pgEnum,
  pgTable,
  serial,
  text,
  timestamp,
  unique,
  varchar,
} from 'drizzle-orm/pg-core';

export const userRole = pgEnum('user_role', ['manager', 'fbo']);
export const challengeStatus = pgEnum('challenge_status', ['draft', 'active', 'closed', 'archived']);
export const actionFrequency = pgEnum('action_frequency', ['once', 'daily', 'weekly']);

export const users = pgTable(
  'users',
  {
    id: serial('id').primaryKey(),
    email: varchar('email', { length: 255 }).notNull().unique(),
    passwordHash: text('password_hash').notNull(),
    firstName: varchar('first_name', { length: 100 }).notNull(),
    lastName: varchar('last_name', { length: 100 }).notNull(),
    role: userRole('role').notNull().default('fbo'),
    managerId: integer('manager_id').references((): AnyPgColumn => users.id, {
      onDelete: 'set null',
    }),
    phone: varchar('phone', { length: 32 }),
    avatarUrl: text('avatar_url'),
    isActive: boolean('is_active').notNull().default(true),
    lastLoginAt: timestamp('last_login_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('users_name_index').on(t.lastName, t.firstName),
    // Performance quick wins (0011)
    index('idx_users_role').on(t.role),
    index('idx_users_manager_id').on(t.managerId),
    index('idx_users_is_active').on(t.isActive),
    index('idx_users_created_at').on(t.createdAt),
    index('idx_users_last_login_at').on(t.lastLoginAt.desc()),
    index('idx_users_role_is_active').on(t.role, t.isActive),
    index('idx_users_manager_role').on(t.managerId, t.role),
  ],
);

export const campaigns = pgTable(
  'campaigns',
  {
    id: serial('id').primaryKey(),
    name: varchar('name', { length: 200 }).notNull(),
    slug: varchar('slug', { length: 200 }).unique(),
    description: text('description'),
    startsAt: timestamp('starts_at', { withTimezone: true }).notNull(),
    endsAt: timestamp('ends_at', { withTimezone: true }),
    isActive: boolean('is_active').notNull().default(true),
    createdBy: integer('created_by').references(() => users.id, { onDelete: 'set null' }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('idx_campaigns_is_active').on(t.isActive),
    index('idx_campaigns_starts_at').on(t.startsAt),
    index('idx_campaigns_ends_at').on(t.endsAt),
    index('idx_campaigns_created_by').on(t.createdBy),
    index('idx_campaigns_active_dates').on(t.isActive, t.startsAt, t.endsAt),
    index('idx_campaigns_created_at').on(t.createdAt),
  ],
);

export const challenges = pgTable(
  'challenges',
  {
    id: serial('id').primaryKey(),
    campaignId: integer('campaign_id')
      .notNull()
      .references(() => campaigns.id, { onDelete: 'cascade' }),
    title: varchar('title', { length: 200 }).notNull(),
    description: text('description'),
    status: challengeStatus('status').notNull().default('draft'),
    startsAt: timestamp('starts_at', { withTimezone: true }),
    endsAt: timestamp('ends_at', { withTimezone: true }),
    position: integer('position').notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('idx_challenges_campaign_id').on(t.campaignId),
    index('idx_challenges_status').on(t.status),
    index('idx_challenges_campaign_status').on(t.campaignId, t.status),
    index('idx_challenges_starts_at').on(t.startsAt),
    index('idx_challenges_ends_at').on(t.endsAt),
    index('idx_challenges_campaign_position').on(t.campaignId, t.position),
    index('idx_challenges_created_at').on(t.createdAt),
  ],
);

export const actions = pgTable(
  'actions',
  {
    id: serial('id').primaryKey(),
    challengeId: integer('challenge_id')
      .notNull()
      .references(() => challenges.id, { onDelete: 'cascade' }),
    label: varchar('label', { length: 200 }).notNull(),
    description: text('description'),
    points: integer('points').notNull().default(10),
    frequency: actionFrequency('frequency').notNull().default('once'),
    isActive: boolean('is_active').notNull().default(true),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('idx_actions_challenge_id').on(t.challengeId),
    index('idx_actions_is_active').on(t.isActive),
    index('idx_actions_frequency').on(t.frequency),
    index('idx_actions_challenge_active').on(t.challengeId, t.isActive),
    index('idx_actions_points').on(t.points),
    index('idx_actions_created_at').on(t.createdAt),
  ],
);

export const userActions = pgTable(
  'user_actions',
  {
    id: serial('id').primaryKey(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    actionId: integer('action_id')
      .notNull()
      .references(() => actions.id, { onDelete: 'cascade' }),
    points: integer('points').notNull().default(0),
    proofUrl: text('proof_url'),
    validatedBy: integer('validated_by').references(() => users.id, { onDelete: 'set null' }),
    validatedAt: timestamp('validated_at', { withTimezone: true }),
    completedAt: timestamp('completed_at', { withTimezone: true }).notNull().defaultNow(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('idx_user_actions_user_id').on(t.userId),
    index('idx_user_actions_action_id').on(t.actionId),
    index('idx_user_actions_completed_at').on(t.completedAt),
    index('idx_user_actions_user_completed').on(t.userId, t.completedAt.desc()),
    index('idx_user_actions_action_completed').on(t.actionId, t.completedAt),
    index('idx_user_actions_validated_by').on(t.validatedBy),
    index('idx_user_actions_validated_at').on(t.validatedAt),
    index('idx_user_actions_pending')
      .on(t.completedAt)
      .where(sql`${t.validatedAt} is null`),
    index('idx_user_actions_user_action').on(t.userId, t.actionId),
    index('idx_user_actions_created_at').on(t.createdAt),
  ],
);

export const dailyBonuses = pgTable(
  'daily_bonuses',
  {
    id: serial('id').primaryKey(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    date: date('date').notNull(),
    points: integer('points').notNull().default(5),
    streak: integer('streak').notNull().default(1),
    claimedAt: timestamp('claimed_at', { withTimezone: true }).notNull().defaultNow(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique('daily_bonuses_user_id_date_unique').on(t.userId, t.date),
    index('idx_daily_bonuses_user_id').on(t.userId),
    index('idx_daily_bonuses_date').on(t.date),
    index('idx_daily_bonuses_claimed_at').on(t.claimedAt),
    index('idx_daily_bonuses_date_points').on(t.date, t.points),
    index('idx_daily_bonuses_streak').on(t.streak),
    index('idx_daily_bonuses_created_at').on(t.createdAt),
    index('idx_daily_bonuses_user_claimed').on(t.userId, t.claimedAt),
  ],
);
