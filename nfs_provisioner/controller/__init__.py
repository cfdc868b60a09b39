"""The generic provisioning controller: queues, reconcilers, leader election, metrics."""
