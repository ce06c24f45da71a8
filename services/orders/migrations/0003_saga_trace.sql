-- The trace the order was placed in (W3C traceparent), so the saga's steps, run later by the
-- saga runner, join the checkout's trace instead of beginning their own (issue 22).
ALTER TABLE sagas ADD COLUMN traceparent TEXT;
