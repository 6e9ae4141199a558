CREATE TYPE "public"."event_level" AS ENUM('info', 'warning', 'error');--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "level" "event_level" DEFAULT 'info' NOT NULL;--> statement-breakpoint
CREATE INDEX "events_level_at_index" ON "events" USING btree ("level","at");