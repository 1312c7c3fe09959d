"""The shell every step runs in, and what all layers share: ids, messages, errors, outcomes,
status values, records, settings, topology, logs. Knows nothing of HTTP or Google clients."""
