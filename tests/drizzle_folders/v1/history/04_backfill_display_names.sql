UPDATE "users" SET "display_name" = split_part("email", '@', 1) WHERE "display_name" IS NULL;
--> statement-breakpoint
DO $$
DECLARE
  missing integer;
BEGIN
  SELECT count(*) INTO missing FROM "users" WHERE "display_name" IS NULL;
  IF missing > 0 THEN
    RAISE EXCEPTION 'backfill left % users without display_name', missing;
  END IF;
END;
$$;
