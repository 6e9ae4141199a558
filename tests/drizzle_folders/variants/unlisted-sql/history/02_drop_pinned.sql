-- Abandoned: this migration was undone (its journal entry reverted) but the file stayed behind.
-- Nothing may run it: it would drop a column the schema still has.
ALTER TABLE "notes" DROP COLUMN "pinned";
