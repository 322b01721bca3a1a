"""CDS Hooks 2.0.1: discovery, service calls, prefetch, cards and feedback."""
