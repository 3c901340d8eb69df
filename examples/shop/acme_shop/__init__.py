"""Acme Outfitters: a small shop that embeds omnisdk. Start reading at `app.py`."""
