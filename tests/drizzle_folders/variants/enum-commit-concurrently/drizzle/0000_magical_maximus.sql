CREATE TYPE "public"."ticket_priority" AS ENUM('low', 'high');--> statement-breakpoint
CREATE TABLE "tickets" (
	"id" serial PRIMARY KEY NOT NULL,
	"title" text NOT NULL,
	"priority" "ticket_priority" DEFAULT 'low' NOT NULL
);
--> statement-breakpoint
COMMIT;