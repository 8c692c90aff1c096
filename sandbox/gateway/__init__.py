"""A local stand-in for the Stax payment gateway: its API shapes and limits, cards and ACH debits that settle,
get voided, refunded or returned, and faults injected per merchant."""
