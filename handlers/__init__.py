"""One module per event kind: parse, read state, decide, act, log one line. No binding library here."""
