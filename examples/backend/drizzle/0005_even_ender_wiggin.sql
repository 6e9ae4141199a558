ALTER TABLE "campaigns" RENAME COLUMN "title" TO "name";--> statement-breakpoint
ALTER TABLE "user_actions" RENAME COLUMN "score" TO "points";