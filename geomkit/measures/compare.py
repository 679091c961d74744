def compare_layers(*a, **k):
    """Placeholder."""
