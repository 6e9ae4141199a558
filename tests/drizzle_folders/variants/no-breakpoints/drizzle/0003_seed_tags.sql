-- Custom SQL migration file, put your code below! --
-- Hand-written below the header of a custom migration in a breakpoints: false project:
-- several statements in one chunk, no breakpoint marker (this project never writes one).
INSERT INTO "tags" ("label") VALUES ('release'), ('incident');
INSERT INTO "authors" ("name", "bio") VALUES ('ops', 'Équipe déploiement');
UPDATE "posts" SET "state" = 'published' WHERE "title" LIKE 'Release %';
