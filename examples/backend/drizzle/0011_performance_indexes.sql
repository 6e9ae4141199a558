CREATE INDEX "idx_actions_challenge_id" ON "actions" USING btree ("challenge_id");--> statement-breakpoint
CREATE INDEX "idx_actions_is_active" ON "actions" USING btree ("is_active");--> statement-breakpoint
CREATE INDEX "idx_actions_frequency" ON "actions" USING btree ("frequency");--> statement-breakpoint
CREATE INDEX "idx_actions_challenge_active" ON "actions" USING btree ("challenge_id","is_active");--> statement-breakpoint
CREATE INDEX "idx_actions_points" ON "actions" USING btree ("points");--> statement-breakpoint
CREATE INDEX "idx_actions_created_at" ON "actions" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "idx_campaigns_is_active" ON "campaigns" USING btree ("is_active");--> statement-breakpoint
CREATE INDEX "idx_campaigns_starts_at" ON "campaigns" USING btree ("starts_at");--> statement-breakpoint
CREATE INDEX "idx_campaigns_ends_at" ON "campaigns" USING btree ("ends_at");--> statement-breakpoint
CREATE INDEX "idx_campaigns_created_by" ON "campaigns" USING btree ("created_by");--> statement-breakpoint
CREATE INDEX "idx_campaigns_active_dates" ON "campaigns" USING btree ("is_active","starts_at","ends_at");--> statement-breakpoint
CREATE INDEX "idx_campaigns_created_at" ON "campaigns" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "idx_challenges_campaign_id" ON "challenges" USING btree ("campaign_id");--> statement-breakpoint
CREATE INDEX "idx_challenges_status" ON "challenges" USING btree ("status");--> statement-breakpoint
CREATE INDEX "idx_challenges_campaign_status" ON "challenges" USING btree ("campaign_id","status");--> statement-breakpoint
CREATE INDEX "idx_challenges_starts_at" ON "challenges" USING btree ("starts_at");--> statement-breakpoint
CREATE INDEX "idx_challenges_ends_at" ON "challenges" USING btree ("ends_at");--> statement-breakpoint
CREATE INDEX "idx_challenges_campaign_position" ON "challenges" USING btree ("campaign_id","position");--> statement-breakpoint
CREATE INDEX "idx_challenges_created_at" ON "challenges" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "idx_daily_bonuses_user_id" ON "daily_bonuses" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "idx_daily_bonuses_date" ON "daily_bonuses" USING btree ("date");--> statement-breakpoint
CREATE INDEX "idx_daily_bonuses_claimed_at" ON "daily_bonuses" USING btree ("claimed_at");--> statement-breakpoint
CREATE INDEX "idx_daily_bonuses_date_points" ON "daily_bonuses" USING btree ("date","points");--> statement-breakpoint
CREATE INDEX "idx_daily_bonuses_streak" ON "daily_bonuses" USING btree ("streak");--> statement-breakpoint
CREATE INDEX "idx_daily_bonuses_created_at" ON "daily_bonuses" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "idx_daily_bonuses_user_claimed" ON "daily_bonuses" USING btree ("user_id","claimed_at");--> statement-breakpoint
CREATE INDEX "idx_user_actions_user_id" ON "user_actions" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "idx_user_actions_action_id" ON "user_actions" USING btree ("action_id");--> statement-breakpoint
CREATE INDEX "idx_user_actions_completed_at" ON "user_actions" USING btree ("completed_at");--> statement-breakpoint
CREATE INDEX "idx_user_actions_user_completed" ON "user_actions" USING btree ("user_id","completed_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "idx_user_actions_action_completed" ON "user_actions" USING btree ("action_id","completed_at");--> statement-breakpoint
CREATE INDEX "idx_user_actions_validated_by" ON "user_actions" USING btree ("validated_by");--> statement-breakpoint
CREATE INDEX "idx_user_actions_validated_at" ON "user_actions" USING btree ("validated_at");--> statement-breakpoint
CREATE INDEX "idx_user_actions_pending" ON "user_actions" USING btree ("completed_at") WHERE "user_actions"."validated_at" is null;--> statement-breakpoint
CREATE INDEX "idx_user_actions_user_action" ON "user_actions" USING btree ("user_id","action_id");--> statement-breakpoint
CREATE INDEX "idx_user_actions_created_at" ON "user_actions" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "idx_users_role" ON "users" USING btree ("role");--> statement-breakpoint
CREATE INDEX "idx_users_manager_id" ON "users" USING btree ("manager_id");--> statement-breakpoint
CREATE INDEX "idx_users_is_active" ON "users" USING btree ("is_active");--> statement-breakpoint
CREATE INDEX "idx_users_created_at" ON "users" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "idx_users_last_login_at" ON "users" USING btree ("last_login_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "idx_users_role_is_active" ON "users" USING btree ("role","is_active");--> statement-breakpoint
CREATE INDEX "idx_users_manager_role" ON "users" USING btree ("manager_id","role");