CREATE TYPE "public"."action_frequency" AS ENUM('once', 'daily', 'weekly');--> statement-breakpoint
ALTER TABLE "actions" ADD COLUMN "frequency" "action_frequency" DEFAULT 'once' NOT NULL;--> statement-breakpoint
ALTER TABLE "user_actions" ADD COLUMN "validated_by" integer;--> statement-breakpoint
ALTER TABLE "user_actions" ADD COLUMN "validated_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "user_actions" ADD CONSTRAINT "user_actions_validated_by_users_id_fk" FOREIGN KEY ("validated_by") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;