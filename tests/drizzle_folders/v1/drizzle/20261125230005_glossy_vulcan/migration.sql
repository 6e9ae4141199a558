CREATE TYPE "user_role" AS ENUM('admin', 'manager', 'fbo');--> statement-breakpoint
CREATE TABLE "organizations" (
	"id" serial PRIMARY KEY,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" serial PRIMARY KEY,
	"organization_id" integer NOT NULL,
	"email" varchar(320) NOT NULL,
	"role" "user_role" DEFAULT 'fbo'::"user_role" NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "users_email_unique_idx" ON "users" ("email");--> statement-breakpoint
CREATE INDEX "users_organization_role_idx" ON "users" ("organization_id","role");--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_organization_id_organizations_id_fkey" FOREIGN KEY ("organization_id") REFERENCES "organizations"("id") ON DELETE CASCADE;