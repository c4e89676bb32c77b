// Replaced by the Raft core work (issue 4).
