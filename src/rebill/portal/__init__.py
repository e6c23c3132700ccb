"""The customer portal (seed 004): links, sessions and server-rendered pages at ``/portal``."""
