-- The audit log is never dropped by a migration: refuse to go below the first one.
SELECT RAISE(ABORT, 'the initial migration cannot be reverted: it holds the audit log');
