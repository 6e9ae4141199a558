-- Custom SQL migration file, put your code below! --
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM "organizations" WHERE "name" = 'Opérations') THEN
    INSERT INTO "organizations" ("name") VALUES ('Opérations');
  END IF;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "normalize_email"() RETURNS trigger AS $fn$
BEGIN
  NEW.email := lower(trim(NEW.email));
  RETURN NEW;
END;
$fn$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER "users_normalize_email"
  BEFORE INSERT OR UPDATE ON "users"
  FOR EACH ROW EXECUTE FUNCTION "normalize_email"();
