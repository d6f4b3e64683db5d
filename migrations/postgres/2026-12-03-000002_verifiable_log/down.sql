DO $$ BEGIN RAISE EXCEPTION 'the verifiable log cannot be reverted: it holds checkpoints'; END $$;
