-- The saga's commit step (issue 16): after the capture, orders commits the reservation in
-- inventory before confirming.
ALTER TABLE sagas DROP CONSTRAINT IF EXISTS sagas_step_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_step_check
    CHECK (step IN ('reserve', 'charge', 'commit', 'release', 'refund', 'confirmed', 'cancelled'));
