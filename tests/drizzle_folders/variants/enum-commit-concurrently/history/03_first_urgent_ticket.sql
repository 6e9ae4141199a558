INSERT INTO "tickets" ("title", "priority") VALUES ('Production is down', 'urgent');
