"""Training: losses over bags, the shared loop, instance-level metrics."""
