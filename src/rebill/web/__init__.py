"""The pages rebill serves to people: the landing page, GraphiQL and the admin console.

Everything a page loads is served from here (``static/``, with the vendored
React and GraphiQL under ``static/vendor/``): no page needs another host.
"""

from rebill.web.routes import graphiql_or, web_routes

__all__ = ["graphiql_or", "web_routes"]
