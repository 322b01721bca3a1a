"""Authentication of callers: the CDS Hooks client JWT verifier and its key and replay stores."""
