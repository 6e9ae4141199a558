CREATE OR REPLACE FUNCTION "app"."set_updated_at"() RETURNS trigger AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER "documents_set_updated_at"
  BEFORE UPDATE ON "app"."documents"
  FOR EACH ROW EXECUTE FUNCTION "app"."set_updated_at"();
