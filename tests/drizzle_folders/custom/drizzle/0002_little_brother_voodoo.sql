ALTER TABLE "app"."accounts" ADD COLUMN "locale" varchar(16) DEFAULT 'fr-FR' NOT NULL;--> statement-breakpoint
ALTER TABLE "app"."documents" ADD COLUMN "slug" varchar(255);--> statement-breakpoint
CREATE INDEX "documents_account_status_index" ON "app"."documents" USING btree ("account_id","status");--> statement-breakpoint
ALTER TABLE "app"."documents" ADD CONSTRAINT "documents_slug_unique" UNIQUE("slug");