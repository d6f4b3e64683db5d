SELECT RAISE(ABORT, 'the verifiable log cannot be reverted: it holds checkpoints');
