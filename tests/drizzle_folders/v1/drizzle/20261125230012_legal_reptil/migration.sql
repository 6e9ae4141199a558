ALTER TYPE "booking_status" ADD VALUE 'completed';--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "display_name" text;--> statement-breakpoint
CREATE INDEX "bookings_status_idx" ON "bookings" ("status");