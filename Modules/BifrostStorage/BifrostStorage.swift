// Replaced by the storage work (issue 2).
