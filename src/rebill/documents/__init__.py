"""Documents: invoices and credit notes as a PDF and as a web page (API.md "Invoices and credit notes").

:mod:`.view` turns what was stored on a document into text, :mod:`.pdf` and
:mod:`.page` print that text, :mod:`.routes` serves them to whoever may read
them, and :mod:`.links` says where.
"""
