-- Planned: backfill events.source once the import job has run.
/* Kept as a reminder; the statements
   will come in a later migration. */
--> statement-breakpoint
-- A second chunk that is only a comment too.
