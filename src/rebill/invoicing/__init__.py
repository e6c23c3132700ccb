"""Invoicing: the documents of the charge path (DOMAIN.md "Invoices").

Below the services and above the domain: ``domain.invoice`` does the
arithmetic of lines and totals; this package numbers documents
(:mod:`.numbering`), writes the invoice of every renewal in the transaction
that records it (:mod:`.issue`), keeps its status following its renewal
(:mod:`.follow`) and reads invoices back (:mod:`.read`).
"""
