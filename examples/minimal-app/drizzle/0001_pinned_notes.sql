ALTER TABLE "notes" ADD COLUMN "pinned" boolean DEFAULT false NOT NULL;--> statement-breakpoint
CREATE INDEX "notes_pinned_created_at_idx" ON "notes" USING btree ("pinned","created_at");