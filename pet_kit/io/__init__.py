"""Reading inputs (texts, tables, streams, the offline datasets) and writing prompt
folders atomically."""
