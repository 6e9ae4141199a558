CREATE OR REPLACE FUNCTION "app"."audit_row"() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  payload jsonb;
BEGIN
  IF TG_OP = 'DELETE' THEN
    payload := to_jsonb(OLD);
  ELSE
    payload := to_jsonb(NEW);
  END IF;
  INSERT INTO "app"."audit_log" (table_name, operation, row_id, detail)
  VALUES (format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME), TG_OP, (payload ->> 'id')::integer, payload);
  RETURN NULL;
END;
$fn$;
--> statement-breakpoint
CREATE TRIGGER "documents_audit"
  AFTER INSERT OR UPDATE OR DELETE ON "app"."documents"
  FOR EACH ROW EXECUTE FUNCTION "app"."audit_row"();
CREATE TRIGGER "accounts_audit"
  AFTER INSERT OR UPDATE OR DELETE ON "app"."accounts"
  FOR EACH ROW EXECUTE FUNCTION "app"."audit_row"();
COMMENT ON TABLE "app"."audit_log" IS 'Journal d''audit – rempli par app.audit_row() ; ne pas modifier à la main.';
--> statement-breakpoint
UPDATE "app"."documents" SET published_at = updated_at WHERE status = 'published' AND published_at IS NULL;
