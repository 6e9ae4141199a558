CREATE TYPE "public"."post_state" AS ENUM('draft', 'published');
ALTER TABLE "authors" ADD COLUMN "bio" text;
ALTER TABLE "posts" ADD COLUMN "state" "post_state" DEFAULT 'draft' NOT NULL;
CREATE INDEX "posts_state_index" ON "posts" USING btree ("state");