-- Custom SQL migration file, put your code below! --
-- Backfill the new slugs, seed the ops account and its guide.
-- Hand-written: several statements in one chunk, no breakpoints.
DO $$
DECLARE
  doc record;
BEGIN
  FOR doc IN SELECT id, title FROM "app"."documents" WHERE slug IS NULL LOOP
    UPDATE "app"."documents"
       SET slug = trim(both '-' from lower(regexp_replace(doc.title, '[^[:alnum:]]+', '-', 'g'))) || '-' || doc.id
     WHERE id = doc.id;
  END LOOP;
  IF NOT EXISTS (SELECT 1 FROM "app"."accounts" WHERE email = 'ops@example.com') THEN
    INSERT INTO "app"."accounts" (email, display_name, locale)
    VALUES ('ops@example.com', 'Équipe Déploiement – café', 'fr-FR');
  END IF;
END $$;
INSERT INTO "app"."documents" (account_id, title, slug, body, status)
SELECT id, 'Guide de Déploiement – café ☕', 'guide-de-deploiement',
       format('Rédigé par %s : 100%% automatique, « zéro » coupure.', display_name), 'published'
  FROM "app"."accounts"
 WHERE email = 'ops@example.com';
UPDATE "app"."documents" SET status = 'archived' WHERE slug LIKE 'tmp-%' OR title LIKE '%(brouillon)';
