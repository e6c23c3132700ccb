"""rebill: a subscription back office."""
