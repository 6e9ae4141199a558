-- Custom SQL migration file, put your code below! --
INSERT INTO "tickets" ("title", "priority") VALUES ('Production is down', 'urgent');
