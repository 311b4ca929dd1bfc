-- 0002_ledger_order: ledger rows are stamped when they are written, not when their transaction began.
--
-- GET /credits/transactions lists newest first by created_at. With the default now() (transaction start), two
-- concurrent balance changes of one user could be stamped in the opposite order to the one in which they took
-- the user's row lock, so the list showed balance_after values out of sequence (24 before 23). Every writer
-- (credits_add, credits_charge, credits_refund) updates the users row first and inserts the ledger row after,
-- so clock_timestamp() at INSERT is taken while the row lock is held and follows the lock order.
ALTER TABLE credit_transactions ALTER COLUMN created_at SET DEFAULT clock_timestamp();
