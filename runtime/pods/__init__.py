"""Pod sandboxes and containers: the model, records, and the controllers that make them real."""
