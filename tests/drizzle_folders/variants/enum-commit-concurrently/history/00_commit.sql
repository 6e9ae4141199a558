--> statement-breakpoint
COMMIT;