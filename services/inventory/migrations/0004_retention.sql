-- Retention (issue 16): reservations that reached their end are deleted after
-- `reservations_keep_days`; the purge finds them by age.
CREATE INDEX reservations_finished_by_age ON reservations (updated_at) WHERE state <> 'held';
