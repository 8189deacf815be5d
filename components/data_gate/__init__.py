"""DataGate: the curated schema and drift check of every data drop."""
