ALTER TABLE "daily_bonuses" ADD COLUMN "streak" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "user_actions" ADD COLUMN "proof_url" text;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "last_login_at" timestamp with time zone;