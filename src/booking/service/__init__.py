"""The service layer: booking rules. Knows nothing of HTTP; raises `booking.service.errors`."""
