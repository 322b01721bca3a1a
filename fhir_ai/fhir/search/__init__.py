"""FHIR search: parameter definitions, extraction on write, query parsing and SQL."""
