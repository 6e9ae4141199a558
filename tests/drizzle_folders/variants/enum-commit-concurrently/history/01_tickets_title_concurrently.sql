CREATE INDEX CONCURRENTLY IF NOT EXISTS "tickets_title_index" ON "tickets" ("title");
