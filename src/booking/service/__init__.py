"""The service layer: the booking rules (pure) and the use cases that run them in their own unit
of work. Knows nothing of HTTP; raises `booking.service.errors`."""
