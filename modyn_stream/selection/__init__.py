"""Selection: which samples a trigger's model trains on, computed by ClickHouse."""
