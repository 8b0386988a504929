"""Task events: persisted with gapless seqs, fanned out live, replayed on reconnect."""
