ALTER TABLE "users" ADD COLUMN "display_name" text;--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "users_role_idx" ON "users" ("role");