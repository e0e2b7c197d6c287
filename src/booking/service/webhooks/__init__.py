"""Outbound webhooks: the organizations' service hooks (the original's), announced from the
outbox (`booking.store.outbox`) and delivered by `delivery`. A use case announces its change
with one call to `announce` in its in-lock step; the rest is here."""
