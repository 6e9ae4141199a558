-- Custom SQL migration file, put your code below! --
-- Hand-written: uses the value 0001 added to order_status.
INSERT INTO "orders" ("reference", "status") VALUES ('welcome-draft', 'draft');
--> statement-breakpoint
UPDATE "orders" SET "status" = 'draft' WHERE "status" = 'pending';
