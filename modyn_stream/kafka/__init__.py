"""Transport: thin typed wrappers over confluent-kafka, topic names and administration, the local broker."""
