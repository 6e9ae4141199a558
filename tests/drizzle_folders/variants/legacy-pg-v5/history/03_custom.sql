-- Hand-written: seed the ops manager (drizzle-kit 0.20 names custom migrations at random).
INSERT INTO "users" ("email", "display_name", "role") VALUES ('ops@example.com', 'Équipe déploiement', 'manager');
--> statement-breakpoint
UPDATE "users" SET "display_name" = split_part("email", '@', 1) WHERE "display_name" IS NULL;
