DO $$ BEGIN RAISE EXCEPTION 'the initial migration cannot be reverted: it holds the audit log'; END $$;
