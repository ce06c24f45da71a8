-- The late-capture sweep (issue 16) reads recently cancelled orders every minute.
CREATE INDEX payments_cancelled ON payments (created_at) WHERE status = 'cancelled';
