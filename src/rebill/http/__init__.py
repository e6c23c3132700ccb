"""The HTTP edge of ``/graphql``: who may ask, and what a request body may be."""
