ALTER TYPE "public"."challenge_status" ADD VALUE 'archived';--> statement-breakpoint
ALTER TABLE "challenges" ADD COLUMN "position" integer DEFAULT 0 NOT NULL;