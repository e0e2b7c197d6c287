"""The roles a registered application can be granted: the one list of their names.

A role is granted in the configuration (`roles:` of an application in the YAML, stored on its
row) and, unless JWT_ROLES_CLAIM is empty, must also be carried by the token."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    APPOINTMENTS_MANAGER = "Appointments Manager"  # books, reads and cancels appointments
    CUSTOMERS_MANAGER = "Customers Manager"  # creates, reads, updates and erases customer records
    # lists its organization's webhook events not delivered, and redelivers them
    WEBHOOKS_OPERATOR = "Webhooks Operator"
